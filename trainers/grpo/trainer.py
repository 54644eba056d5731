"""`EndpointGRPOTrainer`: TRL's GRPOTrainer with rollouts from the evalctl endpoint.

TRL 1.16 ties two things to its own vLLM client (`use_vllm=True`): the weight sync before each
rollout (`self.vllm_generation.sync_weights()`) and the importance-sampling correction that weighs
each token's loss by pi_trainer / pi_vllm from the sampling log-probs. With `rollout_func` and
`use_vllm=False` it does neither, although our rollouts come from vLLM and carry those log-probs.
So the trainer is built without TRL's client (nothing to connect to) and then flagged as a vLLM
run whose "generation backend" is `WeightSync`; TRL's own code does the rest. Nothing else in
TRL's rollout_func path reads these flags (checked against TRL 1.16's grpo_trainer.py). Where
the policy cannot change between TRL's extra log-prob pass and the loss, the weights come from
the loss's own forward instead (importance.py: one forward pass fewer per step).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainerCallback

# rollout_func is marked experimental in TRL 1.16 and warns once per run; we pin TRL's minor version
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
from trl import GRPOTrainer  # noqa: E402
from trl.trainer.utils import RepeatSampler  # noqa: E402

from .importance import importance_weights, mismatch_stats
from .rewards import StepRewards
from .rollout import EndpointRollout
from .sync import WeightSync


class StepClock(TrainerCallback):
    """Wall time of each optimizer step (rollout, scoring and update; checkpoint saves excluded)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.last = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.last = time.perf_counter() - self.t0


class EpochSeededSampler(RepeatSampler):
    """TRL's RepeatSampler with each epoch's order a function of (seed, epoch), not of how many
    epochs this process has drawn: a resumed run then sees the prompts the uninterrupted run saw."""

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed(self._epoch_seed(epoch))

    def _epoch_seed(self, epoch: int) -> int:
        return (self.seed or 0) * 1_000_003 + epoch

    def chunk_at(self, index: int) -> list[int]:
        """The dataset rows of rollout batch `index` (counted over epochs): what `__iter__` yields
        then, computed ahead, since each epoch's order depends on (seed, epoch) only."""
        import torch

        per_epoch = self.num_samples // self.batch_size
        epoch, k = divmod(index, per_epoch)
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self._epoch_seed(epoch)))
            order = order.tolist()
        else:
            order = list(range(self.num_samples))
        return order[k * self.batch_size:(k + 1) * self.batch_size]


class EndpointGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, sync_factory, rollout: EndpointRollout, rewards_log: StepRewards,
                 correct_mismatch: bool, **kwargs):
        self.sampler: EpochSeededSampler | None = None  # built by transformers when training starts
        super().__init__(*args, rollout_func=rollout, **kwargs)
        self.weight_sync: WeightSync = sync_factory(self)
        rollout.sync = self.weight_sync
        rollout.lookahead = self.lookahead
        self.weight_sync.before_push = rollout.wait_pending
        self.rollout, self.rewards_log, self.clock = rollout, rewards_log, StepClock()
        self.extra_logs: dict[str, float] = {}  # e.g. the in-loop eval's metrics for this step
        self._logged_calls = 0  # rollouts already reported: a step without one reports no generation
        self.add_callback(self.clock)
        self.remove_callback(PrinterCallback)  # its dict per step duplicates our progress line
        self.use_vllm = True
        self.vllm_mode = "server"
        self.vllm_generation = self.weight_sync
        self._last_loaded_step = -1
        self.vllm_importance_sampling_correction = correct_mismatch
        self.defer_importance_weights = True  # False: TRL's own extra forward (tests compare the two)

    def weights_from_loss_forward(self) -> bool:
        """Whether the importance weights may come from the loss's own forward (importance.py):
        each rollout batch is trained on within one optimizer step, so the policy is the same in
        TRL's extra log-prob pass and in the loss. --async-rollouts keeps this: a prefetched
        batch is one version behind the policy in both passes alike."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        return self.defer_importance_weights and self.args.gradient_accumulation_steps % generate_every == 0

    def _generate_and_score_completions(self, inputs):
        if not (self.vllm_importance_sampling_correction and self.weights_from_loss_forward()):
            return super()._generate_and_score_completions(inputs)
        # TRL then skips its extra forward (old_per_token_logps None: the loss uses its own,
        # detached) and hands the sampling log-probs on; _compute_loss derives the weights
        self.vllm_importance_sampling_correction = False
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.vllm_importance_sampling_correction = True

    def _compute_loss(self, model, inputs):
        if "importance_sampling_ratio" in inputs or "sampling_per_token_logps" not in inputs \
                or not self.vllm_importance_sampling_correction:
            return super()._compute_loss(model, inputs)
        forward = self._get_per_token_logps_and_entropies

        def forward_then_weigh(*args, **kwargs):
            logps, entropies, aux = forward(*args, **kwargs)
            inputs["importance_sampling_ratio"] = self._weights_for(logps.detach(), inputs)
            return logps, entropies, aux

        # TRL's _compute_loss reads inputs["importance_sampling_ratio"] after its forward; the
        # weights need that forward's log-probs, so they are set between the two
        self._get_per_token_logps_and_entropies = forward_then_weigh
        try:
            return super()._compute_loss(model, inputs)
        finally:
            del self._get_per_token_logps_and_entropies

    def _weights_for(self, logps, inputs):
        mask = inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
        mode = self.vllm_importance_sampling_mode
        sampled = inputs["sampling_per_token_logps"]
        ratio = importance_weights(logps, sampled, mask, mode, self.vllm_importance_sampling_clip_min,
                                   self.vllm_importance_sampling_clip_max)
        if self.model.training:  # TRL averages each list over the step's micro-batches when it logs
            for key, value in mismatch_stats(logps, sampled, mask, ratio, mode.startswith("sequence_")).items():
                reduce = {"min": torch.min, "max": torch.max}.get(key.rsplit("/", 1)[1], torch.mean)
                self._metrics["train"][key].append(reduce(self.accelerator.gather(value)).item())
        return ratio

    def _get_train_sampler(self, dataset=None):
        base = super()._get_train_sampler(dataset)
        self.sampler = EpochSeededSampler(data_source=base.data_source, mini_repeat_count=base.mini_repeat_count,
                                          batch_size=base.batch_size, repeat_count=base.repeat_count,
                                          shuffle=base.shuffle, seed=base.seed)
        return self.sampler

    def steps_per_rollout(self) -> int:
        """Optimizer steps trained on one rollout batch (minibatches x ppo_epochs)."""
        return self.args.steps_per_generation * self.num_iterations // self.args.gradient_accumulation_steps

    def lookahead(self, step: int) -> tuple[int, list] | None:
        """(optimizer step, prompts) of the rollout batch after the one at `step`, or None past the
        end. One process only: under accelerate each process gets a slice this does not compute."""
        if self.accelerator.num_processes > 1 or self.sampler is None:
            return None
        per = self.steps_per_rollout()
        nxt = (step // per + 1) * per
        if nxt >= self.args.max_steps:
            return None
        rows = self.sampler.chunk_at(nxt // per)
        return nxt, [self.train_dataset[i]["prompt"] for i in rows for _ in range(self.sampler.mini_repeat_count)]

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Also restore the trained adapter. With beta > 0 TRL adds a frozen "ref" adapter, so
        checkpoints hold "default" at the top and "ref" in a sub-directory; transformers (5.19) then
        loads only the sub-directories, and a resumed run silently restarted from the initial
        weights (KL 0 and the first step's reward again, measured)."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        weights = Path(resume_from_checkpoint) / "adapter_model.safetensors"
        if weights.is_file():
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            target = self.accelerator.unwrap_model(model if model is not None else self.model)
            set_peft_model_state_dict(target, load_file(str(weights)), adapter_name="default")

    def mark_synced(self) -> None:
        """The current weights are served already (pushed outside a rollout): skip the next sync."""
        self._last_loaded_step = self.state.global_step

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:  # a training step's log, not the end-of-run summary
            logs.update(self.telemetry())
        super().log(logs, start_time)

    def telemetry(self) -> dict[str, float]:
        """Phase times of the step just finished (a step without a rollout reports 0 for sync and
        generation), sampled tokens/s and the adapter version the rollouts came from. time_generation
        is what the step waited for its rollouts; with --async-rollouts most of the engine's time
        (time_generation_engine) ran while the previous step trained."""
        stats, fresh = self.rollout.stats, self.rollout.stats.calls > self._logged_calls
        self._logged_calls = stats.calls
        out = {"time_sync": self.weight_sync.seconds if fresh else 0.0,
               "time_generation": stats.seconds if fresh else 0.0, **self.rewards_log.pop(),
               "time_step": self.clock.last, **self.extra_logs}
        out["time_train"] = max(out["time_step"] - out["time_sync"] - out["time_generation"] - out["time_scoring"], 0.0)
        if fresh and stats.generation_seconds > 0:
            out["sampled_tokens_per_s"] = stats.completion_tokens / stats.generation_seconds
            out["time_generation_engine"] = stats.generation_seconds  # overlapped with training when prefetched
            out["rollout_prefetched"] = float(stats.prefetched)
            out["rollout_staleness"] = stats.staleness
        if stats.version is not None:
            out["adapter_version"] = stats.version
        self.extra_logs = {}
        return out
