"""`evalctl compare`: several run dirs side by side, each metric's mean ± stderr, and a
paired-bootstrap p-value against the first run (paired by sample id), as a table,
a bar chart (PNG) and compare.json.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path

from rich.table import Table

from .results import RESULTS, SUMMARY, ResultsError, dedupe, read_jsonl, write_json
from .stats import paired_bootstrap, paired_bootstrap_greater


class CompareError(ValueError):
    """A run dir or metric that cannot be compared (one line for the user)."""


def load_run(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except FileNotFoundError:
        raise CompareError(f"{run_dir}: no {SUMMARY} (not a finished run dir?)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CompareError(f"{run_dir / SUMMARY}: unreadable ({type(e).__name__})") from None
    try:
        records = dedupe(read_jsonl(run_dir / RESULTS)) if (run_dir / RESULTS).exists() else []
    except ResultsError as e:
        raise CompareError(str(e)) from None
    return {"dir": run_dir, "summary": summary, "scores": {str(r.get("id")): r.get("scores") or {} for r in records}}


def _labels(runs: list[dict]) -> list[str]:
    """The model name where it tells runs apart, else the dir name."""
    models = [str(r["summary"].get("model")) for r in runs]
    if len(set(models)) == len(models):
        return models
    return [f"{m} ({r['dir'].name})" for m, r in zip(models, runs)]


def _metric_names(runs: list[dict], wanted: list[str] | None) -> list[str]:
    known: list[str] = []
    for r in runs:
        known += [m for m in r["summary"].get("metrics", {}) if m not in known]
    if not wanted:
        return known
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
            raise CompareError(f"no metric {name!r} in these runs{hint}")
    return list(wanted)


def _paired(base: dict, other: dict, field: str, base_field: str) -> tuple[list[float], list[float]]:
    a, b = [], []
    for sid, scores in base["scores"].items():
        x, y = scores.get(base_field), other["scores"].get(sid, {}).get(field)
        if x is not None and y is not None:
            a.append(float(x))
            b.append(float(y))
    return a, b


def compare_runs(dirs: list[Path], metrics: list[str] | None = None, *, resamples: int = 10_000,
                 seed: int = 0) -> dict:
    runs = [load_run(d) for d in dirs]
    names = _metric_names(runs, metrics)
    base = runs[0]
    rows = []
    for run, label in zip(runs, _labels(runs)):
        cells = {}
        for name in names:
            m = run["summary"].get("metrics", {}).get(name)
            if m is None:
                cells[name] = None
                continue
            cell = {"mean": m.get("mean"), "stderr": m.get("stderr"), "n": m.get("n")}
            base_m = base["summary"].get("metrics", {}).get(name)
            if run is not base and base_m is not None:
                a, b = _paired(base, run, m["field"], base_m["field"])
                cell.update(n_pairs=len(a), delta=(sum(b) - sum(a)) / len(a) if a else None,
                            p_value=paired_bootstrap(a, b, resamples=resamples, seed=seed))
            cells[name] = cell
        rows.append({"label": label, "dir": str(run["dir"]), "task": run["summary"].get("task"),
                     "model": run["summary"].get("model"), "metrics": cells})
    return {"baseline": rows[0]["label"], "metrics": names, "resamples": resamples, "seed": seed, "runs": rows}


def improvement(before: Path, after: Path, metric: str, *, resamples: int = 10_000, seed: int = 0) -> dict:
    """`after` against `before` on one metric over their shared samples: mean difference and the
    one-sided paired-bootstrap p for "after is better"."""
    a_run, b_run = load_run(before), load_run(after)
    field = a_run["summary"].get("metrics", {}).get(metric, {}).get("field", metric)
    b_field = b_run["summary"].get("metrics", {}).get(metric, {}).get("field", metric)
    a, b = _paired(a_run, b_run, b_field, field)
    return {"before": a_run["summary"].get("model"), "after": b_run["summary"].get("model"), "metric": metric,
            "n_pairs": len(a), "delta": (sum(b) - sum(a)) / len(a) if a else None,
            "p_one_sided": paired_bootstrap_greater(a, b, resamples=resamples, seed=seed)}


def _fmt(cell: dict | None) -> str:
    if cell is None or cell.get("mean") is None:
        return "-"
    text = f"{cell['mean']:.4f}"
    if cell.get("stderr") is not None:
        text += f" ± {cell['stderr']:.4f}"
    if "p_value" in cell:
        text += "  (p n/a)" if cell["p_value"] is None else f"  (p={cell['p_value']:.3g})"
    return text


def render_table(result: dict) -> Table:
    table = Table(title=f"vs {result['baseline']}: paired bootstrap, {result['resamples']} resamples",
                  title_justify="left")
    table.add_column("run")
    for name in result["metrics"]:
        table.add_column(name, justify="right")
    for row in result["runs"]:
        table.add_row(row["label"], *(_fmt(row["metrics"].get(n)) for n in result["metrics"]))
    return table


def plot(result: dict, png: Path) -> None:
    """One panel per metric (their scales differ: rates vs 1-10 judge scores), one bar per run."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    names, runs = result["metrics"], result["runs"]
    cols = min(4, max(1, len(names)))
    rows = math.ceil(max(1, len(names)) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1, 3.2 * rows + 0.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.flat, names):
        cells = [r["metrics"].get(name) or {} for r in runs]
        means = [c.get("mean") if c.get("mean") is not None else 0.0 for c in cells]
        errs = [c.get("stderr") or 0.0 for c in cells]
        ax.bar(range(len(runs)), means, yerr=errs, capsize=4, color=[colors[i % len(colors)] for i in range(len(runs))])
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(runs)), [r["label"] for r in runs], rotation=30, ha="right", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"mean ± stderr (baseline {result['baseline']})", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def write_outputs(result: dict, png: Path) -> Path:
    png = Path(png)
    if png.suffix.lower() != ".png":
        png = png.with_suffix(".png")
    plot(result, png)
    write_json(png.with_suffix(".json"), result)
    return png
