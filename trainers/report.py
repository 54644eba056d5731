"""Where training numbers go: metrics.jsonl (always), TensorBoard (default), wandb (if asked and
installed), and a PNG of the curves at the end."""

from __future__ import annotations

import json
import math
from pathlib import Path


class MetricsLogger:
    """Per-step scalars for the custom loops (GRPO); TRL trainers log through transformers instead."""

    def __init__(self, out: Path, report_to: list[str], run_name: str, config: dict | None = None):
        self.path = Path(out) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tb = self.wandb = None
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(out) / "runs"))
        if "wandb" in report_to:
            import wandb

            self.wandb = wandb.init(name=run_name, config=config or {}, dir=str(out), reinit=True)

    def log(self, step: int, metrics: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def history(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def plot_curves(history: list[dict], keys: list[str], png: Path, title: str, x: str = "step") -> Path | None:
    """One panel per key present in `history` (plus every in-loop `eval/` metric); None when there is
    nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    series = {}
    keys = [*keys, *sorted({k for h in history for k in h if k.startswith("eval/") and k not in keys})]
    for key in keys:
        pts = [(h[x], h[key]) for h in history if x in h and isinstance(h.get(key), (int, float))
               and math.isfinite(h[key])]
        if pts:
            series[key] = pts
    if not series:
        return None
    cols = min(len(series), 4)
    rows = -(-len(series) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(series):]:
        ax.axis("off")
    for ax, (key, pts) in zip(axes.flat, series.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
        ax.set_title(key)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def trainer_history(log_history: list[dict]) -> list[dict]:
    """transformers' `state.log_history` as step-keyed rows (the final summary row dropped)."""
    return [h for h in log_history if "step" in h and "train_runtime" not in h]
