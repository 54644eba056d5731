"""GPU check of the fine-tuning jobs worker (`python -m server.jobs.worker DB JOB_ID`), the
process the gateway's `/v1/fine_tuning/jobs` starts, run without the gateway (there is no
vLLM on the GPU machine): an SFT job, the same job stopped with SIGTERM mid-run and resumed
from its checkpoint as the scheduler does after a restart, and a DPO job. Prints wall time,
steps/s, first and last loss of each, and writes the numbers as JSON.

    python benchmarks/gpu_job_worker.py [--hidden 1024 --layers 8] [--steps 60] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.jobs.spec import BASE_LR  # noqa: E402
from server.jobs.store import Store  # noqa: E402

NAMES = ["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gita", "Hugo"]


def sft_rows(n: int = 64) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"{NAMES[i % 8]} has {i} pens and buys {i % 5} more. How many?"},
                          {"role": "assistant", "content": f"<think> {i} + {i % 5} </think> <answer> {i + i % 5} </answer>"}]}
            for i in range(n)]


def dpo_rows(n: int = 64) -> list[dict]:
    return [{"prompt": f"{NAMES[i % 8]} has {i} pens and buys 2 more. How many?",
             "chosen": f"<answer> {i + 2} </answer>", "rejected": f"<answer> {i + 3} </answer>"} for i in range(n)]


def spec(model: Path, kind: str, steps: int, checkpoint_steps: int, batch: int) -> dict:
    return {"base_path": str(model), "method_type": kind, "learning_rate": BASE_LR[kind],
            "seed": 0, "hyperparameters": {"n_epochs": 100, "max_steps": steps, "batch_size": batch, "lora_rank": 16,
                                           "lora_alpha": 32, "max_length": 256, "checkpoint_steps": checkpoint_steps,
                                           **({"beta": 0.1} if kind == "dpo" else {})}}


def add_job(store: Store, job_id: str, job_spec: dict, rows: list[dict]) -> Path:
    store.add_job(job_id, job_spec)
    store.update_job(job_id, status="running")
    job_dir = store.path.parent / "jobs" / job_id  # where the worker looks (next to the database)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return job_dir


def gpu_mib(pid: int) -> int | None:
    """The process's GPU memory as nvidia-smi sees it: proof the worker trains on the GPU."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        return None
    for line in out.splitlines():
        got, _, mib = line.partition(",")
        if got.strip() == str(pid):
            return int(mib)
    return None


def worker(store: Store, job_id: str, stop_at_step: int | None = None) -> tuple[int, float, int | None]:
    """Run the worker; with stop_at_step, SIGTERM it once the job reports that step."""
    cmd = [sys.executable, "-m", "server.jobs.worker", str(store.path), job_id]
    log = open(store.path.parent / "jobs" / job_id / "worker.log", "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    mib, first = None, store.get_job(job_id)["step"] or 0  # a resumed job starts past 0
    while proc.poll() is None:
        step = store.get_job(job_id)["step"] or 0
        if mib is None and step >= first + 2:
            mib = gpu_mib(proc.pid)
        if stop_at_step is not None and step >= stop_at_step:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    code = proc.wait()
    log.close()
    return code, time.perf_counter() - t0, mib


def losses(store: Store, job_id: str) -> list[tuple[int, float]]:
    return [(m["step"], m["train_loss"]) for m in store.metrics(job_id) if m.get("train_loss") is not None]


def report(store: Store, job_id: str, code: int, wall: float, gpu: int | None) -> dict:
    job = store.get_job(job_id)
    pts = losses(store, job_id)
    history = store.path.parent / "jobs" / job_id / "out" / "log_history.json"
    runtime = [h["train_runtime"] for h in json.loads(history.read_text()) if "train_runtime" in h] \
        if code == 0 and history.is_file() else []
    out = {"job": job_id, "exit": code, "wall_s": round(wall, 1), "train_s": runtime[-1] if runtime else None,
           "worker_gpu_mib": gpu, "steps": job["step"],
           "first_loss": pts[0][1] if pts else None, "last_loss": pts[-1][1] if pts else None,
           "adapter": job["adapter_path"], "error": job["error"],
           "checkpoints": [c["step"] for c in store.list_checkpoints(job_id, None, 100)[0]]}
    if code != 0 and code != 75:
        tail = (store.path.parent / "jobs" / job_id / "worker.log").read_text()[-3000:]
        out["log_tail"] = tail
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check needs a GPU")
    from evalctl.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="job-worker-check-"))
    model = build_tiny_model(work / "model", hidden=args.hidden, layers=args.layers)
    store = Store(work / "jobs.sqlite")
    print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}; random Qwen2 hidden {args.hidden}, "
          f"{args.layers} layers; {args.steps} steps, batch {args.batch}")
    results = {}

    add_job(store, "ftjob-sft", spec(model, "supervised", args.steps, 20, args.batch), sft_rows())
    results["sft"] = report(store, "ftjob-sft", *worker(store, "ftjob-sft"))

    # Stopped mid-run (the gateway going down), then resumed from its newest checkpoint.
    add_job(store, "ftjob-resume", spec(model, "supervised", args.steps, 1000, args.batch), sft_rows())
    stopped = report(store, "ftjob-resume", *worker(store, "ftjob-resume", stop_at_step=args.steps // 2))
    ckpt = store.last_checkpoint("ftjob-resume")
    store.update_job("ftjob-resume", resume_from=ckpt["path"] if ckpt else None)
    resumed = report(store, "ftjob-resume", *worker(store, "ftjob-resume"))
    resumed["resumed_from_step"] = ckpt["step"] if ckpt else None
    resumed["resume_event"] = any("resuming at step" in e["message"]
                                  for e in store.list_events("ftjob-resume", None, 500)[0])
    results["sft_stopped"], results["sft_resumed"] = stopped, resumed

    add_job(store, "ftjob-dpo", spec(model, "dpo", args.steps, 20, args.batch), dpo_rows())
    results["dpo"] = report(store, "ftjob-dpo", *worker(store, "ftjob-dpo"))

    print(f"{'run':<12} {'exit':>4} {'wall s':>7} {'train s':>7} {'GPU MiB':>7} {'steps':>5} "
          f"{'loss first -> last':>20}  checkpoints")
    for name, r in results.items():
        fl = f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}" if r["first_loss"] is not None else "-"
        train = f"{r['train_s']:.1f}" if r["train_s"] else "-"
        print(f"{name:<12} {r['exit']:>4} {r['wall_s']:>7} {train:>7} {r['worker_gpu_mib'] or '-':>7} "
              f"{r['steps'] or 0:>5} {fl:>20}  {r['checkpoints']}")
        if "log_tail" in r:
            print(r["log_tail"])
    print(f"resumed from step {resumed['resumed_from_step']}, 'resuming at step' event: {resumed['resume_event']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
