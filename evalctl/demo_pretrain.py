"""Pretrain the demo's small model from scratch on plain arithmetic question/answer text.

A random model cannot do arithmetic, and nothing downstream (SFT, GRPO) could teach
it in CPU minutes; a couple of minutes of next-token training on the synthetic corpus can.
The result is cached: a directory with `pretrain.json` (written last) is reused as is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from pathlib import Path

from evaluators.tasks.gsm8k import PROMPT

from .demo_task import pretrain_text, problems
from .tiny import build_tokenizer

log = logging.getLogger("evalctl.demo")
PREAMBLE = PROMPT.split("User:")[0]
CORPUS = 2  # bumped whenever the pretraining text changes: a model cached from another corpus is rebuilt


def _tokenizer(out_dir: Path, seed: int, hidden: int, layers: int):
    # Trained on the demo's own text plus the r1_zero prompt, so numbers up to 40 are single
    # tokens and the prompt the evaluator sends is short.
    lines = [pretrain_text(p) for p in problems(3000, seed=seed + 100)] + [PROMPT.format(question="")] * 20
    raw = build_tokenizer(out_dir, lines=lines)
    _config(raw, hidden, layers).save_pretrained(out_dir)
    # Train with the tokenizer as vLLM will load it: beside a qwen2 config.json, transformers applies
    # Qwen2's pre-tokenizer on reload (one token per digit), not the in-memory BPE's merges.
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(out_dir))


def _config(tok, hidden: int, layers: int):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, head_dim=64,  # vLLM CPU: head_dim 64
        max_position_embeddings=1024, tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id, torch_dtype="float32")


def _batches(tok, texts: list[str], batch_size: int, rng: random.Random, pack: int = 3):
    """Several texts per sequence (packing): the evaluator's prompt is a long preamble plus the
    question, and a model trained only on short sequences falls apart at positions it never saw."""
    eos = tok.eos_token
    while True:
        chunk = rng.sample(texts, batch_size * pack)
        seqs = ["\n\n".join(chunk[i:i + pack]) + eos for i in range(0, len(chunk), pack)]
        # Half the sequences open with the r1_zero instructions (as any web-trained base has read
        # such text): the tag tokens get trained embeddings, which LoRA alone cannot give them,
        # while the answers stay untagged, so the base still does not follow the format.
        for i in range(0, len(seqs), 2):
            seqs[i] = PREAMBLE + seqs[i]
        enc = tok(seqs, return_tensors="pt", padding=True)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        yield enc["input_ids"], enc["attention_mask"], labels


def _train(model, batches, steps: int, lr: float) -> dict:
    """AdamW with a short warm-up (a from-scratch model diverges without it) for `steps` steps."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    t0, step, losses = time.perf_counter(), 0, []
    for ids, mask, labels in batches:
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            log.info("pretrain step %d: loss %.3f (%.0fs)", step, sum(losses[-100:]) / 100, time.perf_counter() - t0)
        if step >= steps:
            break
    return {"steps": step, "seconds": time.perf_counter() - t0, "final_loss": sum(losses[-50:]) / len(losses[-50:])}


def pretrain(out_dir: Path, *, steps: int, exclude: set[str], hidden: int = 128, layers: int = 2,
             seed: int = 0, batch_size: int = 16, lr: float = 3e-3) -> Path:
    """Train for `steps` steps; returns out_dir. Reuses an existing build. A step count, not a
    wall-clock budget: with a budget the model's quality followed the machine's load (249 steps in
    210 s on a busy machine), and with it what SFT and GRPO had left to win."""
    import torch
    from transformers import Qwen2ForCausalLM

    out_dir = Path(out_dir)
    held_out = hashlib.sha1("\n".join(sorted(exclude)).encode()).hexdigest()[:12]
    done = out_dir / "pretrain.json"  # written last: marks a finished build
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("steps") == steps and info.get("held_out") == held_out and info.get("corpus") == CORPUS:
            return out_dir
        # another test set, step count or corpus: a cached model may have seen the new held-out questions
        log.info("rebuilding %s: it was pretrained for another step count, held-out set or corpus", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # 2 threads on 2 busy cores measured 20x slower per step than 1
    tok = _tokenizer(out_dir, seed, hidden, layers)
    model = Qwen2ForCausalLM(_config(tok, hidden, layers))
    texts = [pretrain_text(p, dialog=i % 2 == 1)
             for i, p in enumerate(problems(20000, seed=seed + 7, exclude=exclude))]
    info = _train(model, _batches(tok, texts, batch_size, random.Random(seed)), steps, lr)
    model.save_pretrained(out_dir, safe_serialization=True)
    gen = {"eos_token_id": model.config.eos_token_id, "pad_token_id": model.config.pad_token_id}
    (out_dir / "generation_config.json").write_text(json.dumps(gen))
    done.write_text(json.dumps({**info, "held_out": held_out, "corpus": CORPUS}))
    return out_dir
