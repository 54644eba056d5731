"""server/vllm_plugin.py: vLLM's CPU LoRA ops with base-model tokens (index -1) left alone."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import torch

from server import vllm_plugin

lora_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")
INDICES = torch.tensor([0, -1, 2, -1, 1])  # tokens of adapters 0, 2, 1 and two base tokens


def weights(slots=3, out=6, inp=4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(slots, 1, out, inp, generator=g), torch.randn(len(INDICES), inp, generator=g)


def run(ops, name, zero=False, **kw):
    w, x = weights()
    w = torch.zeros_like(w) if zero else w
    y = torch.full((len(INDICES), 8), 0.5)
    if name == "bgmv_shrink":
        ops.bgmv_shrink(x, w, y, INDICES, 2.0)
    elif name == "bgmv_expand":
        ops.bgmv_expand(x, w, y, INDICES, add_inputs=kw.get("add", True))
    else:
        ops.bgmv_expand_slice(x, w, y, INDICES, 1, 6, add_inputs=kw.get("add", True))
    return y


@pytest.mark.parametrize("name,add", [("bgmv_shrink", None), ("bgmv_expand", True), ("bgmv_expand", False),
                                      ("bgmv_expand_slice", True), ("bgmv_expand_slice", False)])
def test_base_tokens_get_no_adapter_and_lora_tokens_are_unchanged(name, add):
    assert getattr(lora_ops, name) is not getattr(vllm_plugin, name)  # this process never loaded the plugin
    ours, theirs = run(vllm_plugin, name, add=add), run(lora_ops, name, add=add)
    lora = INDICES >= 0
    assert torch.allclose(ours[lora], theirs[lora], rtol=1e-5, atol=1e-6)  # the same where an adapter applies
    assert torch.equal(ours[~lora], run(lora_ops, name, zero=True, add=add)[~lora])  # what a zero adapter gives
    assert not torch.equal(theirs[~lora], ours[~lora])  # vLLM 0.32 applied slot 2 (the last) there


def test_one_adapter_batch_and_mixed_batch_agree_row_by_row():
    """The one-matmul fast path and the per-adapter loop give each row the same values."""
    w, x = weights()
    alone = vllm_plugin.lora_matmul(x, w, torch.full((len(INDICES),), 2), torch.float32)
    mixed = vllm_plugin.lora_matmul(x, w, INDICES, torch.float32)
    assert torch.allclose(mixed[INDICES == 2], alone[INDICES == 2]) and torch.equal(mixed[1], torch.zeros(6))


def test_the_patch_is_decided_by_behaviour():
    assert vllm_plugin.no_lora_rows_leak(lora_ops.bgmv_shrink)  # the installed vLLM has the bug
    assert not vllm_plugin.no_lora_rows_leak(vllm_plugin.bgmv_shrink)


def test_vllm_finds_the_plugin_entry_point():
    found = {ep.name: ep.value for ep in entry_points(group="vllm.general_plugins")}
    assert found.get("evalctl_cpu_lora") == "server.vllm_plugin:register"
