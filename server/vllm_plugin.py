"""A vLLM general plugin (entry point `vllm.general_plugins`): loaded by vLLM itself in every
engine process evalctl starts, never imported by the gateway.

It replaces the three PyTorch LoRA ops vLLM's CPU backend uses (`vllm/lora/ops/torch_ops/
lora_ops.py`, called by `PunicaWrapperCPU`), for two measured reasons:
- Wrong tokens: they select `lora_weights[token_lora_indices]`, and -1, vLLM's "no LoRA for this
  token", picks the *last* adapter slot. Once `max_loras` adapters have been active, a base-model
  request batched beside a LoRA request gets the last slot's adapter applied, with no error. The
  Triton kernels skip -1; upstream's fix is open (vllm-project/vllm#48421).
- Speed: they gather one weight matrix per token and contract with einsum, which moves
  tokens x rank x hidden floats per call: 62 ms for 1,600 prefill tokens into a 512-wide layer,
  where one matmul per adapter present takes 0.6 ms (benchmarks/lora_ops.py). Sampling through an
  adapter ran at a ninth of the base model's tokens/s on the demo model.
Here each adapter present in the batch gets one matmul over its rows; rows of -1 get zero.

The patch applies to the vLLM release it was written against (0.32) and to any release whose
ops still leak the last slot into -1 rows (a probe on a 1x2 tensor); `VLLM_PLUGINS` (vLLM's own
switch) can leave it out.

On CPU it also shortens the worker's idle spin. vLLM's worker process busy-waits on its shared-
memory queue (`SpinCondition`, sched_yield in a loop) for a second after every message before it
sleeps on a socket. Between decode steps messages come milliseconds apart, so the spin only
matters after the last one: on a machine whose cores the engine shares (a trainer beside its
engine, two replicas on two cores) it took a whole core for a second after each batch, i.e. the
first second of every GRPO training phase. EVALCTL_VLLM_IDLE_SPIN_S sets the cap (default 0.05).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("evalctl.vllm_plugin")
_NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
TESTED_VLLM = "0.32."


def lora_matmul(inputs, weights, indices, dtype):
    """Row t of `inputs` times adapter `indices[t]`'s matrix (weights: [slots, (1,) out, in]);
    rows of index -1 (no LoRA) get zeros. One matmul per adapter present in the batch."""
    import torch

    w = weights.squeeze(1) if weights.dim() == 4 else weights
    x = inputs.to(dtype=dtype)
    present = torch.unique(indices).tolist()
    if len(present) == 1 and present[0] >= 0:  # the common case: one adapter for the whole batch
        return x @ w[present[0]].to(dtype=dtype).T
    out = x.new_zeros(x.shape[0], w.shape[-2])
    for i in present:
        if i >= 0:
            rows = (indices == i).nonzero().squeeze(1)
            out[rows] = x[rows] @ w[i].to(dtype=dtype).T
    return out


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    # LoRA adapter and model may add different amounts of padding to output
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int,
                      slice_size: int, add_inputs: bool = True):
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs[:]
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs[:]


def no_lora_rows_leak(shrink) -> bool:
    """True when `shrink` applies an adapter to a token marked -1 (no LoRA)."""
    import torch

    out = torch.zeros(1, 2)
    shrink(torch.ones(1, 2), torch.ones(1, 1, 2, 2), out, torch.tensor([-1]), 1.0)
    return bool(out.abs().sum() > 0)


def cap_idle_spin(seconds: float) -> bool:
    """Readers of vLLM's shared-memory queue spin at most `seconds` after a message (was 1 s);
    False when this vLLM has no such queue or it is capped already."""
    try:
        from vllm.distributed.device_communicators import shm_broadcast
    except Exception:  # noqa: BLE001 - another vLLM layout: nothing to cap
        return False
    cls = getattr(shm_broadcast, "SpinCondition", None)
    if cls is None or not hasattr(cls, "wait") or getattr(cls.wait, "evalctl_cap", None) is not None:
        return False
    wait = cls.wait

    def capped_wait(self, timeout_ms=None):
        if getattr(self, "busy_loop_s", 0) > seconds:
            self.busy_loop_s = seconds
        return wait(self, timeout_ms)

    capped_wait.evalctl_cap = seconds
    cls.wait = capped_wait
    return True


def register() -> None:
    """vLLM calls this once per process; a second call finds the ops already replaced."""
    _cap_spin_on_cpu()
    try:
        from vllm.lora.ops import torch_ops
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
    except Exception as e:  # a vLLM without these modules has nothing to patch
        log.debug("evalctl LoRA patch not applied: %s", e)
        return
    if lora_ops.bgmv_shrink is bgmv_shrink:
        return
    import vllm

    leaks = no_lora_rows_leak(lora_ops.bgmv_shrink)
    if not (leaks or vllm.__version__.startswith(TESTED_VLLM)):
        return
    # lora_ops' sgmv_* call its bgmv_* by global name; punica_cpu and torch_ops hold their own copies.
    for module in (lora_ops, torch_ops, punica_cpu):
        for name in _NAMES:
            if hasattr(module, name):
                setattr(module, name, globals()[name])
    log.warning("evalctl: vLLM %s's CPU LoRA ops replaced by one matmul per adapter%s", vllm.__version__,
                " (they applied the last adapter slot to base-model tokens, vllm-project/vllm#48421)"
                if leaks else "")


def _cap_spin_on_cpu() -> None:
    try:
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
    except Exception:  # noqa: BLE001 - no platform: not an engine process
        return
    if on_cpu:
        cap_idle_spin(float(os.environ.get("EVALCTL_VLLM_IDLE_SPIN_S", "0.05")))
