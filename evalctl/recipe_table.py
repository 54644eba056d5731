"""A recipe's final table: one row per evaluated model, read from the stages' run dirs, written as
JSON, Markdown and a chart (the same panels as `evalctl compare`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .recipes import Context, Recipe, RecipeError


def _metric(summary: dict, name: str) -> dict | None:
    """`name` from summary.json: an evaluator metric (mean ± stderr), else a dotted path to a number
    (`by_category.convfinqa.accuracy`, `recall@3`)."""
    m = (summary.get("metrics") or {}).get(name)
    if isinstance(m, dict) and "mean" in m:
        return {"mean": m.get("mean"), "stderr": m.get("stderr"), "n": m.get("n")}
    node = summary
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return {"mean": node, "stderr": None, "n": None} if isinstance(node, (int, float)) else None


def metric_value(file: Path, name: str, where: str) -> float:
    try:
        cell = _metric(json.loads(Path(file).read_text()), name)
    except (OSError, ValueError) as e:
        raise RecipeError(f"{where}: cannot read {file}: {e}") from None
    if cell is None or not isinstance(cell["mean"], (int, float)) or not math.isfinite(cell["mean"]):
        raise RecipeError(f"{where}: no finite {name!r} in {file}")
    return float(cell["mean"])


def build_table(recipe: Recipe, ctx: Context) -> dict:
    spec = recipe.table
    metrics = [str(m) for m in spec.get("metrics") or []]
    rows = []
    for i, row in enumerate(spec["rows"]):
        where = f"table row {i + 1}"
        if not isinstance(row, dict) or "label" not in row or "run" not in row:
            raise RecipeError(f"{recipe.path}: {where} needs `label` and `run`")
        path = Path(ctx.expand(str(row["run"]), where))
        file = path / str(row.get("file", "summary.json")) if path.is_dir() else path
        try:
            summary = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise RecipeError(f"{where} ({row['label']}): cannot read {file}: {e}") from None
        cells = {m: _metric(summary, str(row.get("map", {}).get(m, m))) for m in metrics}
        rows.append({"label": str(row["label"]), "run": str(file.parent), "metrics": cells})
    return {"recipe": recipe.name, "pipeline": recipe.pipeline, "metrics": metrics, "rows": rows}


def finite(table: dict) -> bool:
    """Every row has every metric, each a finite number."""
    return all(c is not None and isinstance(c["mean"], (int, float)) and math.isfinite(c["mean"])
               for r in table["rows"] for c in r["metrics"].values())


def _fmt(cell: dict | None) -> str:
    if cell is None or cell["mean"] is None:
        return "-"
    s = f"{cell['mean']:.3f}"
    return s + (f" ± {cell['stderr']:.3f}" if cell.get("stderr") is not None else "")


def markdown(table: dict) -> str:
    head = ["model", *table["metrics"]]
    lines = [f"**{table['recipe']}** ({table.get('profile', '')}): {table['pipeline']}", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in table["rows"]:
        lines.append("| " + " | ".join([r["label"], *(_fmt(r["metrics"][m]) for m in table["metrics"])]) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: dict, run_dir: Path) -> dict[str, Path]:
    from evaluators.compare import plot

    paths = {"json": run_dir / "table.json", "markdown": run_dir / "table.md", "png": run_dir / "table.png"}
    paths["json"].write_text(json.dumps(table, indent=2))
    paths["markdown"].write_text(markdown(table))
    runs = [{"label": r["label"], "metrics": r["metrics"]} for r in table["rows"]]
    plot({"metrics": table["metrics"], "runs": runs, "baseline": table["rows"][0]["label"]}, paths["png"])
    return paths
