"""Chinese criminal judgment prediction: CAIL2018 cases (LawBench 3-4 reshaped, or
the original CAIL2018 format) and the LawShift folder layout.

Answers are `{罪名} | {刑期月数}`, `{罪名} | XT` (life/death) or `不违规`, the layout
of LawShift's training prompt, so one prompt serves both sources. LawShift cases
also carry their law-change `label`; on the poisoned split the original charge
and term no longer apply, so only the label is kept there.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..data import data_root, read_records, resolve
from ..scorers.legal import (XT, lawshift_label_accuracy, legal_charge_accuracy, legal_combined, legal_corpus_metrics,
                             legal_format_reward, legal_term_exact, legal_term_score, parse_legal)
from ..task import Sample, Task

DEFAULT_DATA = "legal/cail2018_ljp.jsonl"
SYSTEM = "你是一名精通中华人民共和国刑法的法官助理，根据案件事实和相关法条预测判决结果。"
PROMPT = """请根据以下案件事实，预测被告人的罪名和刑期。

【案件事实】
{fact}
{articles}
要求：先简要分析，最后用 <answer></answer> 给出答案，格式为“罪名 | 刑期月数”，例如 <answer>盗窃 | 7</answer>。
- 罪名不带“罪”字，有多个罪名时用“;”分隔；
- 刑期为有期徒刑的月数（纯数字）；无期徒刑或死刑写 XT，例如 <answer>故意杀人 | XT</answer>；
- 若依据法条不构成犯罪，回答 <answer>不违规</answer>。"""
SPLITS = ("original", "poisoned")


def _prompt(fact: str, articles: str = "") -> list[dict[str, str]]:
    block = f"\n【相关法条】\n{articles}\n" if articles else ""
    user = PROMPT.format(fact=fact, articles=block)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _term_bucket(term: Any) -> str:
    if term == XT:
        return "term:XT"
    for bound, name in ((6, "0-6"), (12, "7-12"), (36, "13-36"), (120, "37-120")):
        if isinstance(term, int) and term <= bound:
            return f"term:{name}"
    return "term:121+"


def _cail_articles_text(table: dict[str, str], ids: list) -> str:
    """CAIL names whole articles (264); the criminal-law file holds them by paragraph (264-0-0)."""
    parts = []
    for a in ids:
        paras = [text for key, text in table.items() if key == str(a) or key.startswith(f"{a}-")]
        parts.append(f"【第{a}条】{''.join(paras) or '（法条内容未找到）'}")
    return "\n".join(parts)


def _case(rec: dict, sample_id: str, table: dict[str, str] | None = None) -> Sample | None:
    """One CAIL case, from either the original `meta` layout or the reshaped one; with `table`
    (article id -> text) its relevant articles go into the prompt."""
    if not isinstance(rec, dict) or not rec.get("fact"):
        return None
    if isinstance(rec.get("meta"), dict):
        meta = rec["meta"]
        term = meta.get("term_of_imprisonment") or {}
        prison: Any = XT if term.get("life_imprisonment") or term.get("death_penalty") else term.get("imprisonment")
        charges = [str(c).replace("[", "").replace("]", "") for c in meta.get("accusation") or []]
        articles = meta.get("relevant_articles") or []
    else:
        prison, charges, articles = rec.get("prison_time"), list(rec.get("charge") or []), rec.get("relevant_articles")
    text = _cail_articles_text(table, articles or []) if table else ""
    return {"id": str(rec.get("id", sample_id)), "prompt": _prompt(str(rec["fact"]), text),
            "category": _term_bucket(prison), "charge": charges, "prison_time": prison,
            "relevant_articles": articles or []}


def _articles_text(table: dict, ids: list) -> str:
    return "\n".join(f"【{a}】{table.get(str(a), '（法条内容未找到）')}" for a in ids or [])


def _lawshift_labels(root: Path) -> dict[str, str]:
    candidates = [root / "label.json", root / "lawshift_labels.json", root.parent / "label.json"]
    try:
        candidates.append(data_root() / "legal" / "lawshift_labels.json")
    except FileNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return {row["name"]: row["label"] for row in json.loads(path.read_text("utf-8")) if "name" in row}
    return {}


def _load_lawshift_folder(folder: Path, label: str | None, splits: tuple[str, ...] = SPLITS) -> list[Sample]:
    tables = {s: json.loads((folder / f"articles_{s}.json").read_text("utf-8"))
              if (folder / f"articles_{s}.json").is_file() else {} for s in SPLITS}
    samples = []
    for split in splits:
        if not (folder / f"{split}.json").is_file():
            continue
        for i, rec in enumerate(read_records(folder / f"{split}.json")):
            ids = rec.get("relevant_articles") or []
            articles = _articles_text(tables[split], ids)
            if split == "poisoned":  # LawShift shows the old law next to the amended one
                articles = f"- 旧法：\n{_articles_text(tables['original'], ids)}\n- 新法（以此为准）：\n{articles}"
            sample: Sample = {"id": f"lawshift-{folder.name}-{split}-{i}",
                              "prompt": _prompt(str(rec.get("fact", "")), articles),
                              "category": f"{folder.name}/{split}", "label": label, "split": split}
            if split == "original":
                sample.update(charge=list(rec.get("charge") or []), prison_time=rec.get("prison_time"))
            samples.append(sample)
    return samples


def _is_lawshift_folder(path: Path) -> bool:
    return path.is_dir() and any((path / f"{s}.json").is_file() for s in SPLITS)


def load(path: Path | None = None, table: dict[str, str] | None = None) -> list[Sample]:
    """CAIL jsonl (reshaped or original `meta` layout), a LawShift type folder, or the LawShift root."""
    path = resolve(path, DEFAULT_DATA)
    if path.is_file() and path.stem in SPLITS and _is_lawshift_folder(path.parent):  # one split of one type
        return _load_lawshift_folder(path.parent, _lawshift_labels(path.parent.parent).get(path.parent.name),
                                     (path.stem,))
    if path.is_dir():
        folders = [path] if _is_lawshift_folder(path) else sorted(p for p in path.iterdir()
                                                                    if _is_lawshift_folder(p))
        if not folders:
            raise FileNotFoundError(f"{path}: no LawShift folders (original.json / poisoned.json) found")
        labels = _lawshift_labels(path.parent if _is_lawshift_folder(path) else path)
        return [s for folder in folders for s in _load_lawshift_folder(folder, labels.get(folder.name))]
    cases = (_case(rec, f"{path.stem}-{i}", table) for i, rec in enumerate(read_records(path)))
    return [c for c in cases if c is not None]


def load_with_articles(path: Path | None = None) -> list[Sample]:
    """As `load`, with each CAIL case's relevant articles in its prompt, read from
    criminal_law_articles.json beside the data file or under the data root (LawShift has its own)."""
    data = resolve(path, DEFAULT_DATA)
    beside = (data if data.is_dir() else data.parent) / "criminal_law_articles.json"
    file = beside if beside.is_file() else resolve(None, ARTICLES_DATA)
    return load(path, json.loads(file.read_text("utf-8")))


def extract(text: str) -> str | None:
    parsed = parse_legal(text)
    if parsed is None:
        return None
    if not parsed.violation:
        return "不违规"
    return f"{';'.join(parsed.charges)} | {parsed.term if parsed.term is not None else '?'}"


ARTICLES_DATA = "legal/criminal_law_articles.json"
TASK = Task(
    name="legal",
    description="CAIL2018 criminal judgment prediction (charges + prison term); LawShift folders also accepted",
    load=load,
    scorers={"format": legal_format_reward, "charge_accuracy": legal_charge_accuracy, "term_exact": legal_term_exact,
             "term_score": legal_term_score, "combined": legal_combined, "lawshift_accuracy": lawshift_label_accuracy},
    extract=extract,
    summary_names={"format": "format_rate", "combined": "avg_combined", "lawshift_accuracy": "lawshift_success_rate"},
    primary="combined",
    sampling={"temperature": 0.0, "max_tokens": 1024},
    corpus=legal_corpus_metrics,
)

ARTICLES_TASK = dataclasses.replace(
    TASK, name="legal_articles", load=load_with_articles,
    description="legal with each case's relevant criminal-law articles in the prompt (criminal_law_articles.json)")
