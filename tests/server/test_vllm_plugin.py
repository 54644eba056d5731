"""server/vllm_plugin.py: vLLM's CPU LoRA ops with base-model tokens (index -1) left alone."""

from __future__ import annotations

import time
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


def test_idle_spin_is_capped_and_reads_still_wake(monkeypatch):
    """The worker's queue reader spins at most the cap after a read (vLLM: 1 s), and a reader past
    it still wakes on the writer's notification."""
    import zmq
    from vllm.distributed.device_communicators import shm_broadcast

    monkeypatch.setattr(shm_broadcast.SpinCondition, "wait", shm_broadcast.SpinCondition.wait)  # restored after
    assert vllm_plugin.cap_idle_spin(0.05)
    assert not vllm_plugin.cap_idle_spin(0.05)  # once per process
    ctx = zmq.Context()
    address = "inproc://evalctl-spin-test"
    writer = shm_broadcast.SpinCondition(is_reader=False, context=ctx, notify_address=address)
    reader = shm_broadcast.SpinCondition(is_reader=True, context=ctx, notify_address=address)
    try:
        time.sleep(0.2)  # the subscription reaches the publisher asynchronously
        assert reader.busy_loop_s == 1  # vLLM's default, which the cap is about
        reader.wait(timeout_ms=0)
        assert reader.busy_loop_s == 0.05
        reader.last_read -= 1.0  # long idle: the next wait sleeps on the socket until notified
        writer.notify()
        t0 = time.monotonic()
        reader.wait(timeout_ms=5_000)
        assert time.monotonic() - t0 < 4.0
    finally:
        for s in (writer.local_notify_socket, reader.local_notify_socket, reader.read_cancel_socket,
                  reader.write_cancel_socket):
            s.close(linger=0)
        ctx.term()
