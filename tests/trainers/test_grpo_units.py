"""GRPO pieces without a server: the batch mapping onto TRL, request grouping and seeds, version
checks, reward wrappers, and the wiring into TRL's GRPOTrainer on one fixed rollout batch."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from clients.client import Generation  # noqa: E402
from trainers.config import GRPOSettings  # noqa: E402
from trainers.errors import RolloutError, RolloutVersionError, TrainError  # noqa: E402
from trainers.grpo.rewards import StepRewards, reward_functions, scorer_reward  # noqa: E402
from trainers.grpo.rollout import EndpointRollout, RolloutStats, prompt_groups, rollout_params  # noqa: E402
from trainers.grpo.run import batch_shape, grpo_config  # noqa: E402
from trainers.grpo.sync import check_versions  # noqa: E402
from trainers.grpo.telemetry import metrics_row  # noqa: E402
from trainers.tasks import TOY_TASKS, contains_reward, target_fraction_reward  # noqa: E402


def settings(**kw) -> GRPOSettings:
    return GRPOSettings(**{"model": "m", "task": "toy-fraction", "out": "o", **kw})


def test_batch_shape_maps_one_rollout_batch_onto_trl():
    # 4 prompts x 8 = 32 completions, micro-batches of 16: two accumulation steps, one optimizer step
    assert batch_shape(settings(prompts_per_step=4, num_generations=8, micro_batch_size=16), 1) == {
        "per_device_train_batch_size": 16, "steps_per_generation": 2, "gradient_accumulation_steps": 2}
    # two optimizer steps per rollout batch, over two processes
    assert batch_shape(settings(prompts_per_step=4, num_generations=8, micro_batch_size=4, minibatches=2), 2) == {
        "per_device_train_batch_size": 4, "steps_per_generation": 4, "gradient_accumulation_steps": 2}
    with pytest.raises(TrainError, match="does not divide"):
        batch_shape(settings(prompts_per_step=3, num_generations=2, micro_batch_size=4), 1)
    with pytest.raises(TrainError, match="do not split over 4 processes"):
        batch_shape(settings(prompts_per_step=1, num_generations=2), 4)


def test_prompt_groups_and_request_seeds():
    assert prompt_groups(["a", "a", "a", "b", "b", "a"]) == [("a", 3), ("b", 2), ("a", 1)]
    chat = [{"role": "user", "content": "hi"}]
    assert prompt_groups([chat, chat]) == [(chat, 2)]
    ro = EndpointRollout(None, None, {}, seed=7, eos_token_id=0)
    seeds = {ro.request_seed(step, proc, g) for step in range(3) for proc in range(2) for g in range(16)}
    assert len(seeds) == 3 * 2 * 16  # every request of a run gets its own seed
    assert ro.request_seed(1, 0, 0) == EndpointRollout(None, None, {}, 7, 0).request_seed(1, 0, 0)
    params = rollout_params(TOY_TASKS["toy-fraction"], 0.7, 0.9, 12)
    assert params["return_token_ids"] and params["max_tokens"] == 12 and params["temperature"] == 0.7


def test_check_versions():
    good = [Generation("p", ["a"], adapter_version=3, engine_model="grpo@v3")]
    check_versions(good, "grpo", 3)
    with pytest.raises(RolloutVersionError, match="served by version 2 .*not version 3"):
        check_versions([*good, Generation("p", ["a"], adapter_version=2, engine_model="grpo@v2")], "grpo", 3)
    with pytest.raises(RolloutError, match="failed"):
        check_versions([Generation("p", error="APIConnectionError: down")], "grpo", 3)


def test_toy_rewards():
    assert target_fraction_reward(["1a1b", "", "xyz"], target=["1", "1", "1"]) == [0.5, 0.0, 0.0]
    assert target_fraction_reward(["1111"]) == [1.0]  # default target "1"
    assert contains_reward(["has Hugo", "none"], target=["Hugo", "Hugo"]) == [1.0, 0.0]
    samples = TOY_TASKS["toy-contains"].load(None)
    assert len(samples) == 16 and {s["target"] for s in samples} == {"1", "5", "+", "Assistant"}


def test_reward_wrappers_record_weighted_max_and_survive_scorer_bugs():
    log = StepRewards({"a": 1.0, "b": 0.5})
    a = scorer_reward("a", lambda completions, **_: [1.0, None, 0.0], log)
    b = scorer_reward("b", lambda completions, target, **_: [float(t) for t in target], log)
    assert a.__name__ == "a"  # TRL logs rewards/<__name__>/mean
    assert a(["x", "y", "z"], prompts=["p"] * 3, trainer_state=None) == [1.0, None, 0.0]
    assert b(["x", "y", "z"], target=["2", "4", "0"], completion_ids=[[1]] * 3) == [2.0, 4.0, 0.0]
    popped = log.pop()
    assert popped["reward_max"] == 2.0  # max(1 + 1, 0 + 2, 0 + 0): None counts 0, as in TRL's nansum
    assert popped["time_scoring"] >= 0 and log.pop() == {"time_scoring": 0.0}
    broken = scorer_reward("c", lambda completions, **_: 1 / 0, log)
    assert broken(["x", "y"]) == [None, None]


def test_reward_functions_validate_names_and_weights():
    task = TOY_TASKS["toy-fraction"]
    funcs, weights, _ = reward_functions(task, None, None, None, 0.0, None)
    assert [f.__name__ for f in funcs] == ["reward"] and weights == [1.0]
    with pytest.raises(TrainError, match="nope not among toy-fraction's scorers"):
        reward_functions(task, "nope", None, None, 0.0, None)
    with pytest.raises(TrainError, match="2 values for 1 rewards"):
        reward_functions(task, "reward", "1,2", None, 0.0, None)
    with pytest.raises(TrainError, match="--judge-weight needs --judge-model"):
        reward_functions(task, None, None, None, 0.5, None)


def test_metrics_row_keeps_trl_names_and_adds_short_ones():
    row = metrics_row(3, {"reward": 0.5, "sampling/sampling_logp_difference/mean": 0.01, "kl": 0.2, "time_step": 1.0})
    assert row == {"step": 3, "reward_mean": 0.5, "logprob_diff": 0.01, "kl": 0.2, "reward": 0.5,
                   "sampling/sampling_logp_difference/mean": 0.01, "time_step": 1.0}


class FixedRollout:
    """Stands in for the endpoint: hands TRL fixed ids and 'engine' log-probs, as vLLM would."""

    def __init__(self, out: dict):
        self.out, self.sync, self.stats, self.seen = out, None, RolloutStats(), []

    def __call__(self, prompts, trainer):
        self.seen.append(list(prompts))
        return self.out

    def wait_pending(self) -> None:  # nothing is prefetched
        pass


class NoServer:
    version, seconds, name = 1, 0.0, "grpo"

    def __init__(self):
        self.calls = 0

    def sync_weights(self):
        self.calls += 1
        return 1


def test_trl_receives_our_ids_logprobs_and_corrects_with_truncated_weights(tiny_model, tmp_path):
    """One fixed batch through EndpointGRPOTrainer: TRL's completion mask follows our ids, its
    sampling log-probs are the ones we handed over, the importance weight is
    min(exp(logp_trainer - logp_vllm), cap), and the advantages are group-normalised rewards."""
    from datasets import Dataset

    from trainers.grpo.rewards import StepRewards
    from trainers.grpo.trainer import EndpointGRPOTrainer
    from trainers.modeling import load_policy

    cfg = settings(out=tmp_path, prompts_per_step=2, num_generations=2, micro_batch_size=4, lora_r=4,
                   report_to="none", beta=0.0, importance_cap=2.0)
    params = rollout_params(TOY_TASKS["toy-fraction"], 1.0, 1.0, 4)
    model, tok = load_policy(str(tiny_model), cfg)
    p1, p2 = tok("Ann has 3").input_ids, tok("Bob has 12 pens and").input_ids
    comps = [[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]]
    engine_lp = [[-1.0, -2.0, -3.0], [-0.5], [-50.0, -1.0], [-2.0, -2.0, -2.0, -2.0]]
    rollout = FixedRollout({"prompt_ids": [p1, p1, p2, p2], "completion_ids": comps, "logprobs": engine_lp})

    def length_reward(completions, completion_ids, **_):
        return [float(len(c)) for c in completion_ids]

    sync = NoServer()
    trainer = EndpointGRPOTrainer(
        model=model, reward_funcs=[length_reward], args=grpo_config(cfg, params, [1.0], 1),
        train_dataset=Dataset.from_list([{"prompt": "Ann has 3"}, {"prompt": "Bob has 12 pens and"}]),
        processing_class=tok, rollout=rollout, rewards_log=StepRewards({"length_reward": 1.0}),
        sync_factory=lambda t: sync, correct_mismatch=True)
    trainer.model.train()
    batch = [{"prompt": "Ann has 3"}] * 2 + [{"prompt": "Bob has 12 pens and"}] * 2
    trainer.defer_importance_weights = False  # TRL's own path: an extra forward for old_per_token_logps
    trl_out = trainer._generate_and_score_completions(batch)
    trainer.defer_importance_weights = True  # ours: the weights from the loss's forward
    out = trainer._generate_and_score_completions(batch)
    assert sync.calls == 1  # TRL asked our sync hook to push before the first rollout of the step, once
    assert rollout.seen == [[b["prompt"] for b in batch]] * 2
    mask = out["completion_mask"].tolist()
    assert mask == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert out["completion_ids"][0, :3].tolist() == [5, 6, 7]
    sampled = out["sampling_per_token_logps"]
    for i, lps in enumerate(engine_lp):
        assert sampled[i, :len(lps)].tolist() == pytest.approx(lps)
    # what the trainer's own forward gives for those tokens, and the truncated weight from it
    old = trl_out["old_per_token_logps"]
    want = torch.clamp(torch.exp(old - sampled), max=2.0)
    m = out["completion_mask"].bool()
    assert torch.allclose(trl_out["importance_sampling_ratio"][m], want[m], atol=1e-5)
    assert "old_per_token_logps" not in out and "importance_sampling_ratio" not in out  # no extra forward
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test skips
    loss = trainer.compute_loss(trainer.model, out)  # sets out["importance_sampling_ratio"] from its forward
    assert torch.allclose(out["importance_sampling_ratio"][m], want[m], atol=1e-5)
    assert out["importance_sampling_ratio"][2, 0].item() == pytest.approx(2.0)  # engine far less sure: capped
    assert out["importance_sampling_ratio"][0, 0].item() < 2.0
    assert loss.item() == pytest.approx(trainer.compute_loss(trainer.model, trl_out).item(), abs=1e-6)
    assert trainer._metrics["train"]["sampling/importance_sampling_ratio/max"][-1] == pytest.approx(2.0)
    # rewards 3, 1 | 2, 4: group means 2 and 3, std sqrt(2) in both groups
    s = math.sqrt(2.0) + 1e-4
    assert out["advantages"].tolist() == pytest.approx([1 / s, -1 / s, -1 / s, 1 / s], rel=1e-4)
    # with the correction off, TRL gets no importance weights at all
    trainer.vllm_importance_sampling_correction = False
    plain = trainer._generate_and_score_completions(batch)
    trainer.compute_loss(trainer.model, plain)
    assert "importance_sampling_ratio" not in plain


@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_computes_coming_batches_before_it_yields_them(shuffle):
    """--async-rollouts samples batch k+1 while k trains: the prompts it guesses are the ones TRL
    then asks for, across epochs (7 rows, 3 per batch: 2 batches an epoch, one row dropped)."""
    from trainers.grpo.trainer import EpochSeededSampler

    sampler = EpochSeededSampler(data_source=list(range(7)), mini_repeat_count=2, batch_size=3, repeat_count=2,
                                 shuffle=shuffle, seed=5)
    yielded = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        rows = list(sampler)
        per_batch = 3 * 2 * 2  # rows x mini_repeat x repeat: [r0, r0, r1, r1, r2, r2] twice
        yielded += [rows[b:b + 6:2] for b in range(0, len(rows), per_batch)]
    assert yielded == [sampler.chunk_at(i) for i in range(6)]
    assert (yielded[0] != yielded[2]) is shuffle  # epochs are reshuffled only when shuffling


def test_best_version_keeps_the_best_adapter_and_forgets_retrained_steps(tmp_path):
    from trainers.in_loop_eval import BestVersion

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    kept = BestVersion(tmp_path / "out", "score")
    (tmp_path / "out").mkdir()
    for step, score in ((1, 0.2), (2, 0.5), (3, 0.4)):
        (adapter / "weights").write_text(f"step {step}")
        kept.offer({"step": step, "score": score}, adapter)
    assert kept.get() == {"step": 2, "score": 0.5} and (kept.path / "weights").read_text() == "step 2"
    kept.offer({"step": 4, "score": 0.5}, adapter)  # a tie keeps the earlier one unless ties win
    assert kept.get()["step"] == 2
    kept.offer({"step": 5, "score": 0.5}, adapter, ties_win=True)
    assert kept.get()["step"] == 5
    kept.forget_after(4)  # a resume from step 4 trains step 5 again
    assert kept.get() is None and not kept.path.exists()
