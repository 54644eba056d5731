"""Build a tiny Qwen2-shaped causal LM on disk: random weights, a BPE tokenizer
trained here with `tokenizers`, and a ChatML chat template.

It is what the offline demo and the test suite serve with real vLLM. The shape
is the smallest the vLLM CPU attention kernel accepts (head_dim 64; 16 is refused).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
NAMES = ["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gita", "Hugo"]
ITEMS = ["apples", "pens", "books", "coins", "cards", "eggs", "shells", "stamps"]


def corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Arithmetic word problems in GSM8K's shape plus the r1_zero tags, so the
    tokenizer has sensible merges for the text the demo and tests send."""
    rng = random.Random(seed)
    lines = [
        "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
        "The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. "
        "The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags.",
    ]
    for _ in range(n):
        who, what = rng.choice(NAMES), rng.choice(ITEMS)
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        lines.append(
            f"User: {who} has {a} {what} and buys {b} more. How many {what} does {who} have now?\n"
            f"Assistant: <think> {a} + {b} = {a + b} </think> <answer> {a + b} </answer>\n#### {a + b}"
        )
    return lines


def build_tokenizer(out_dir: Path, vocab_size: int = 1024, lines: list[str] | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines or corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model(out_dir: str | Path, *, seed: int = 0, layers: int = 2, hidden: int = 128) -> Path:
    """Write a servable tiny model to out_dir (idempotent: an existing build is reused)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "model.safetensors").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=1024,
        # A wide init makes greedy outputs vary with the prompt instead of
        # repeating one token, so tests can tell models and adapters apart.
        initializer_range=0.3,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    gen = {"eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id}
    (out_dir / "generation_config.json").write_text(json.dumps(gen))
    return out_dir


if __name__ == "__main__":  # `python -m evalctl.tiny DIR`: the model the docs' examples are served with
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else ".cache/tiny"))
