"""Real TRL/peft on the tiny model (CPU, no server): weighted SFT loss, DPO margin, SVD init, merge."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from trainers.config import SFTSettings, SvdInitSettings  # noqa: E402
from trainers.lora_tools import adapter_deltas, svd_init  # noqa: E402

from .conftest import run_cli, write_jsonl  # noqa: E402


def _per_sample_nll(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL and loss-token count per sample, from a plain forward pass."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return nll.sum(-1), (labels != -100).sum(-1)


def test_sample_weights_in_the_loss(tiny_model, tmp_path):
    from trainers.sft import build_trainer

    cfg = SFTSettings(model=str(tiny_model), data=tmp_path / "unused", out=tmp_path, lora_dropout=0.0,
                      report_to="none")
    rows = [{"prompt": "User: 2 + 3 =", "completion": " 5 and more words", "weight": 1.0},
            {"prompt": "User: 40 + 2 =", "completion": " 42", "weight": 1.0}]
    trainer = build_trainer(cfg, rows)
    model = trainer.model.eval()
    examples = [dict(trainer.train_dataset[i]) for i in range(2)]
    examples.sort(key=lambda e: len(e["input_ids"]), reverse=True)  # a first: the longer completion

    def loss_for(weights, exs=examples):
        batch = trainer.data_collator([{**e, "weight": w} for e, w in zip(exs, weights)])
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return loss.item(), grads, batch

    ones, _, batch = loss_for([1.0, 1.0])
    with torch.no_grad():
        s, n = _per_sample_nll(model, batch)
    assert ones == pytest.approx((s.sum() / n.sum()).item(), rel=1e-5)  # all ones: TRL's own token mean
    two_one, _, _ = loss_for([2.0, 1.0])
    assert two_one == pytest.approx(((2 * s[0] + s[1]) / n.sum()).item(), rel=1e-5)
    zero, g_zero, _ = loss_for([1.0, 0.0])
    assert zero == pytest.approx((s[0] / n.sum()).item(), rel=1e-5)
    # a zero weight removes the sample from the gradient: it points where sample a's alone does
    _, g_alone, _ = loss_for([1.0], examples[:1])
    scale = (n[0] / n.sum()).item()
    assert all(torch.allclose(gz, ga * scale, atol=1e-6) for gz, ga in zip(g_zero, g_alone))


def _margin(model_dir, adapter, rows) -> float:
    """Mean DPO implicit-reward margin: (log π/π_ref)(chosen) - (log π/π_ref)(rejected)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(model_dir)), str(adapter)).eval()

    def logp(prompt, reply):
        p, ids = tok(prompt).input_ids, tok(prompt + reply).input_ids
        x = torch.tensor([ids])
        lp = model(x).logits[0, :-1].log_softmax(-1).gather(-1, x[0, 1:, None]).squeeze(-1)
        return lp[len(p) - 1:].sum()

    margins = []
    with torch.no_grad():
        for r in rows:
            pol = logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"])
            with model.disable_adapter():
                ref = logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"])
            margins.append((pol - ref).item())
    return sum(margins) / len(margins)


def test_sft_adapter_starts_from_its_seed(tiny_model, tmp_path):
    """LoRA's A matrices are random and made before TRL's trainer seeds anything: unseeded, the same
    `train sft` command gave other adapters (the demo's SFT accuracy 0.040 in one run, 0.065 in the next)."""
    from trainers.sft import build_trainer

    rows = [{"prompt": "User: 2 + 3 =", "completion": " 5"}]

    def lora_a(seed: int) -> list[torch.Tensor]:
        cfg = SFTSettings(model=str(tiny_model), data=tmp_path / "unused", out=tmp_path, report_to="none", seed=seed)
        model = build_trainer(cfg, rows).model
        return [p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n]

    first, again, other = lora_a(0), lora_a(0), lora_a(1)
    assert first and all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_dpo_increases_the_margin(tiny_model, tmp_path):
    rows = [{"prompt": f"User: {a} + {a} =", "chosen": f" {2 * a}", "rejected": f" {2 * a + 1}"} for a in range(1, 7)]
    out = tmp_path / "dpo"
    run_cli("train", "dpo", "--model", tiny_model, "--data", write_jsonl(tmp_path / "p.jsonl", rows), "--out", out,
            "--max-steps", 6, "--learning-rate", 5e-3, "--lora-r", 8, "--report-to", "none")
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["last_loss"] < summary["first_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2 at the start
    assert _margin(tiny_model, out / "adapter", rows) > 0.5
    assert (out / "dpo_curves.png").is_file()


def test_svd_init_reconstructs_delta(tiny_model, tmp_path):
    from server.lora_files import write_lora_adapter

    teacher = write_lora_adapter(tiny_model, tmp_path / "teacher", rank=8, scale=0.5, seed=3)
    deltas, _ = adapter_deltas(teacher)
    full = svd_init(SvdInitSettings(teacher=teacher, rank=8, out=tmp_path / "s8"))
    assert full["modules"] == 14 and full["max_rel_error"] < 1e-6  # rank 8 from a rank-8 ΔW: exact
    part = svd_init(SvdInitSettings(teacher=teacher, rank=4, out=tmp_path / "s4", alpha=16))
    student, cfg = adapter_deltas(tmp_path / "s4")
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 16
    for module, dw in deltas.items():
        s = torch.linalg.svdvals(dw)
        best = (s[4:].square().sum().sqrt() / s.square().sum().sqrt()).item()  # Eckart-Young optimum
        got = ((dw - student[module]).norm() / dw.norm()).item()
        assert got == pytest.approx(best, abs=1e-6) == pytest.approx(part["per_module"][module]["rel_error"], abs=1e-6)
        assert got < 1.0
    # the student is a starting point for SFT
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "1 + 1 =", "completion": " 2"}] * 2)
    run_cli("train", "sft", "--model", tiny_model, "--data", data, "--out", tmp_path / "sft", "--init", tmp_path / "s4",
            "--max-steps", 1, "--report-to", "none")
    assert json.loads((tmp_path / "sft" / "adapter" / "adapter_config.json").read_text())["r"] == 4


def test_merged_model_matches_base_plus_adapter(tiny_model, tmp_path):
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from server.lora_files import write_lora_adapter

    adapter = write_lora_adapter(tiny_model, tmp_path / "a", rank=8, scale=0.3, seed=5)
    run_cli("lora", "merge", "--model", tiny_model, "--adapter", adapter, "--out", tmp_path / "merged")
    ids = torch.tensor([[5, 80, 304, 223, 21, 90, 17]])
    with torch.no_grad():
        peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(adapter))
        want = peft_model.eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, base, atol=1e-2)
    keys = lambda d: set(safe_open(str(d / "model.safetensors"), "pt").keys())  # noqa: E731
    assert keys(tmp_path / "merged") == keys(tiny_model)  # same layout vLLM loads the base from
    assert (tmp_path / "merged" / "tokenizer.json").is_file() and (tmp_path / "merged" / "config.json").is_file()
