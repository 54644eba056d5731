"""A vLLM general plugin (entry point `vllm.general_plugins`): loaded by vLLM itself in every
engine process evalctl starts, never imported by the gateway.

It fixes one vLLM CPU bug: the PyTorch LoRA ops (`vllm/lora/ops/torch_ops/lora_ops.py`, used
by `PunicaWrapperCPU`) select `lora_weights[token_lora_indices]`, and -1, vLLM's "no LoRA for
this token", picks the *last* adapter slot. So once `max_loras` adapters have been active, a
base-model request batched beside a LoRA request gets the last slot's adapter applied: wrong
tokens, no error. The Triton kernels skip -1; upstream's fix is open (vllm-project/vllm#48421).

The patch is decided by behaviour, not by version: at load it runs the op on a 1x2 tensor with
index -1 and replaces the three `bgmv_*` ops only if that row comes out non-zero. A vLLM that
has the fix gets nothing replaced. `VLLM_PLUGINS` (vLLM's own switch) can leave it out.
"""

from __future__ import annotations

import logging

log = logging.getLogger("evalctl.vllm_plugin")
_NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


def _select(weights, indices, dtype):
    """The per-token adapter weights, all zero for tokens without a LoRA (index -1)."""
    import torch

    selected = weights[indices.clamp(min=0)].to(dtype=dtype)
    if len(selected.shape) == 4:
        selected = selected.squeeze(dim=1)
    no_lora = indices < 0
    if bool(no_lora.any()):
        selected = selected.masked_fill(no_lora.view(-1, 1, 1), 0)
    return selected, torch


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    selected, torch = _select(lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    outputs = torch.einsum("bi, boi -> bo", inputs.to(dtype=output_tensor.dtype), selected)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    selected, torch = _select(lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    outputs = torch.einsum("bi, boi -> bo", inputs.to(dtype=output_tensor.dtype), selected)
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
    selected, torch = _select(lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    outputs = torch.einsum("bi, boi -> bo", inputs.to(dtype=output_tensor.dtype), selected)
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


def register() -> None:
    """vLLM calls this once per process; a second call finds the ops already replaced."""
    try:
        from vllm.lora.ops import torch_ops
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
    except Exception as e:  # a vLLM without these modules has nothing to patch
        log.debug("evalctl LoRA patch not applied: %s", e)
        return
    if lora_ops.bgmv_shrink is bgmv_shrink or not no_lora_rows_leak(lora_ops.bgmv_shrink):
        return
    # lora_ops' sgmv_* call its bgmv_* by global name; punica_cpu and torch_ops hold their own copies.
    for module in (lora_ops, torch_ops, punica_cpu):
        for name in _NAMES:
            if hasattr(module, name):
                setattr(module, name, globals()[name])
    log.warning("evalctl: vLLM's CPU LoRA ops applied the last adapter slot to base-model tokens "
                "(vllm-project/vllm#48421); replaced bgmv_shrink/expand/expand_slice with ones that skip them")
