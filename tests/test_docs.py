"""The docs hold to the code, without a server: links resolve, every `evalctl` and benchmark
command shown uses subcommands and options that exist, and the tagged blocks that need no
endpoint run as written. The blocks that need one: tests/test_docs_served.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.docs_blocks import DOCS, FENCED, ROOT, block, code_blocks, run_block, tagged_blocks

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SEPARATORS = {";", "&&", "||", "|", "&"}


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail into docs/"


# -- links ----------------------------------------------------------------------------------------
def _prose(text: str) -> str:
    """The text outside fenced blocks and inline code, where a link is a link."""
    return re.sub(r"`[^`\n]*`", "", FENCED.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCED.sub("", doc.read_text()).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_slug_matches_githubs():
    assert slug("Evaluation at the engine's limit") == "evaluation-at-the-engines-limit"
    assert slug("`rag eval`") == "rag-eval"
    assert slug("The demo: base -> SFT -> GRPO") == "the-demo-base---sft---grpo"


# -- commands -------------------------------------------------------------------------------------
def shell_commands(code: str):
    """Each simple command of a bash block as its words (continuations joined, comments and
    heredoc bodies dropped, split at ; && || | &)."""
    lines, heredoc = [], None
    for line in code.replace("\\\n", " ").splitlines():
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if m := re.search(r"<<-?\s*'?(\w+)'?", line):
            heredoc = m.group(1)
        lines.append(line)
    for line in lines:
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lex.whitespace_split, lex.commenters = True, "#"
        words: list[str] = []
        for token in lex:
            if token in SEPARATORS:
                if words:
                    yield words
                words = []
            else:
                words.append(token)
        if words:
            yield words


def _evalctl_args(words: list[str]) -> list[str] | None:
    if words[0] == "evalctl":
        return words[1:]
    for i, w in enumerate(words[:-1]):  # accelerate launch ... -m evalctl.cli train grpo ...
        if w == "-m" and words[i + 1] == "evalctl.cli":
            return words[i + 2:]
    return None


def _option_names(cmd: click.Command) -> set[str]:
    return {name for p in cmd.params for name in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}


def check_evalctl(args: list[str]) -> list[str]:
    """What is wrong with one `evalctl ...` command line: unknown subcommands or options."""
    from evalctl.cli import main

    cmd, path = main, ["evalctl"]
    words = [w.strip("[]") for w in args]
    while isinstance(cmd, click.Group) and words and not words[0].startswith("-"):
        if words[0] not in cmd.commands:
            return [f"{' '.join(path)}: no subcommand {words[0]!r}"]
        cmd = cmd.commands[words[0]]
        path.append(words.pop(0))
    if isinstance(cmd, click.Group) and "--help" not in words:
        return [f"{' '.join(path)}: a group, not a command"]
    known = _option_names(cmd)
    return [f"{' '.join(path)}: no option {w.split('=')[0]}" for w in words
            if w.startswith("--") and w.split("=")[0] not in known]


def test_every_evalctl_command_in_the_docs_exists():
    checked, wrong = 0, []
    for doc, code in code_blocks("bash"):
        for words in shell_commands(code):
            if (args := _evalctl_args(words)) is not None:
                checked += 1
                wrong += [f"{doc.relative_to(ROOT)}: {problem}" for problem in check_evalctl(args)]
    assert checked >= 40, checked  # the parser still finds the commands
    assert not wrong, "\n".join(wrong)


def test_the_command_checker_catches_mistakes():
    assert check_evalctl(["run", "gsm8k", "--model", "m", "--limits", "3"]) == ["evalctl run: no option --limits"]
    assert check_evalctl(["train", "grpo2"]) == ["evalctl train: no subcommand 'grpo2'"]
    assert check_evalctl(["rag", "ls"]) == []
    words = list(shell_commands("evalctl rag ls ; evalctl rag drop h   # comment\nx --y \\\n  --z"))
    assert words == [["evalctl", "rag", "ls"], ["evalctl", "rag", "drop", "h"], ["x", "--y", "--z"]]


def test_every_benchmark_command_in_the_docs_exists():
    """`python benchmarks/X.py --option`: the script exists and declares each option."""
    checked, wrong = 0, []
    for doc, code in code_blocks() + [(d, m) for d in DOCS for m in re.findall(r"`(python benchmarks/[^`]+)`",
                                                                                d.read_text())]:
        for words in shell_commands(code):
            if len(words) < 2 or words[0] != "python" or not words[1].startswith("benchmarks/"):
                continue
            checked += 1
            script = ROOT / words[1]
            if not script.exists():
                wrong.append(f"{doc.name}: no {words[1]}")
                continue
            source = script.read_text()
            wrong += [f"{doc.name}: {words[1]} has no {w}" for w in words[2:]
                      if w.startswith("--") and f'"{w.split("=")[0]}"' not in source]
    assert checked >= 8, checked
    assert not wrong, "\n".join(wrong)


# -- tagged blocks ----------------------------------------------------------------------------------
def test_every_tagged_block_has_a_test():
    tests = (Path(__file__).read_text() + (Path(__file__).parent / "test_docs_served.py").read_text())
    tested = set(re.findall(r"""(?:run_block|block|\brun)\(\s*["']([\w-]+)["']""", tests))
    assert set(tagged_blocks()) == tested


def test_serve_tiny_is_the_suites_server(tmp_path):
    """The README's tiny server is started the way the test suite starts it; its model builds."""
    from tests.conftest import ENGINE_ARGS

    build, serve = list(shell_commands(block("serve-tiny")[1]))
    assert build[:3] == ["python", "-m", "evalctl.tiny"]
    suite = dict(zip(ENGINE_ARGS[::2], ENGINE_ARGS[1::2]))
    shown = dict(zip(serve[2::2], serve[3::2]))
    assert serve[:2] == ["evalctl", "serve"] and shown["--name"] == "tiny"
    assert all(shown[k] == suite[k] for k in shown.keys() & suite.keys())
    assert {"--dtype", "--max-model-len", "--max-lora-rank"} <= shown.keys()
    out = subprocess.run([sys.executable, *build[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    built = tmp_path / out.stdout.strip().splitlines()[-1]  # it prints the model's directory
    assert (built / "config.json").exists() and (built / "model.safetensors").exists()


def test_eval_offline_block_scores_saved_completions(tmp_path):
    out = run_block("eval-offline", tmp_path)
    summary = json.loads(out[out.index("\n{") + 1:])  # after score's table: the cat of summary.json
    assert summary["num_examples"] == 2 and summary["accuracy"] == 0.5 and summary["format_rate"] == 1.0


def test_rag_lexical_block_finds_the_passage(tmp_path):
    (tmp_path / "handbook").mkdir()
    (tmp_path / "handbook" / "refunds.md").write_text(
        "# Refunds\n\nYou may return any item within 30 days of delivery. The refund window closes after that.\n")
    (tmp_path / "handbook" / "shipping.txt").write_text("Shipping takes 3 to 5 working days.\n")
    out = run_block("rag-lexical", tmp_path).splitlines()
    hits = [line for line in out if line.startswith("[")]
    assert len(hits) == 1 and hits[0].startswith("[refunds.md#0]") and "refund window" in hits[0]
    assert re.match(r"handbook\s+2 documents\s+2 chunks\s+none", out[-1]), out[-1]
    assert (tmp_path / ".cache" / "rag" / "chroma").is_dir()  # the default store, under the cwd


def test_the_demo_table_lives_in_one_place():
    """A new demo run updates one table (docs/benchmarks.md); the other pages link to it."""
    header = "| run | format_rate | accuracy |"
    holders = [d.relative_to(ROOT).as_posix() for d in DOCS if header in d.read_text()]
    assert holders == ["docs/benchmarks.md"], holders
