"""Policy weights to the server, and proof that rollouts came from them.

TRL calls `sync_weights()` before the first rollout after each optimizer step (the hook its own
vLLM client uses). The main process saves the adapter and loads it under the policy name; the
server answers with a new version and stamps every response with the version that produced it.
Other processes (accelerate launch) wait for that version and sample from it too. A rollout from
any other version (a stale engine, a concurrent push) would train on someone else's samples, so it
stops the run.
"""

from __future__ import annotations

import time
from pathlib import Path

from clients.client import Generation

from ..endpoint import BackgroundLoop, push_adapter
from ..errors import RolloutError, RolloutVersionError


def save_adapter(model, path: Path) -> None:
    """Only the trained adapter: with beta > 0 TRL keeps a frozen copy of an --init adapter as "ref"."""
    model.save_pretrained(str(path), selected_adapters=["default"])


class WeightSync:
    """What TRL's GRPOTrainer knows as `vllm_generation` on the rollout_func path: `sync_weights()`."""

    def __init__(self, trainer, loop: BackgroundLoop, name: str, work_dir: Path, base_name: str | None = None):
        self.trainer, self.loop, self.name = trainer, loop, name
        self.work_dir, self.base_name = Path(work_dir), base_name
        self.version: int | None = None
        self.seconds = 0.0  # time of the last sync, for the step's telemetry
        self.before_push = None  # EndpointRollout.wait_pending: no prefetch in flight across a push

    def sync_weights(self) -> int:
        if self.before_push is not None:
            self.before_push()
        t0 = time.perf_counter()
        acc = self.trainer.accelerator
        version = None
        if acc.is_main_process:
            save_adapter(acc.unwrap_model(self.trainer.model), self.work_dir)
            # the server snapshots the directory, so overwriting it at the next step is safe
            version = self.loop.run(push_adapter(self.loop.client, self.name, self.work_dir, self.base_name))
        self.version = broadcast_version(version, acc.num_processes)
        self.seconds = time.perf_counter() - t0
        return self.version


def broadcast_version(version: int | None, num_processes: int) -> int:
    """The main process's version on every process (they all sample from it)."""
    if num_processes > 1:
        from accelerate.utils import broadcast_object_list

        version = broadcast_object_list([version], from_process=0)[0]
    if version is None:
        raise RolloutError("no adapter version was pushed before sampling")
    return version


def check_versions(gens: list[Generation], name: str, version: int) -> None:
    for g in gens:
        if g.error:
            raise RolloutError(f"rollout request to {name!r} failed: {g.error}")
        if g.adapter_version != version:
            raise RolloutVersionError(
                f"rollouts for {name!r} were served by version {g.adapter_version} ({g.engine_model}), "
                f"not version {version} just pushed")
