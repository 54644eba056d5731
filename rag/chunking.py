"""Character chunks with overlap, cut at sentence ends where possible.

Pure functions on strings. Sizes are in characters (not tokens) so the same
settings mean the same thing for Chinese and English text and for any embedder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Sentence ends (Latin and CJK), then weaker breaks: clause punctuation and whitespace.
_SENTENCE = re.compile(r"(?<=[.!?。！？；;])[\"'”’」』)\]]*\s*|\n\s*\n|\n")
_WEAK = re.compile(r"(?<=[,，、:：])\s*|\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offset of the chunk in the document
    index: int


def _breaks(text: str, pattern: re.Pattern) -> list[int]:
    return [m.end() for m in pattern.finditer(text) if 0 < m.end() < len(text)]


def _cut(text: str, start: int, size: int) -> int:
    """End of the chunk that starts at `start`: the last sentence end in the window's second
    half, else the last weaker break there, else exactly `start + size` (a hard cut)."""
    limit = start + size
    if limit >= len(text):
        return len(text)
    window = text[start:limit + 1]
    floor = size // 2  # a break too early would make tiny chunks
    for pattern in (_SENTENCE, _WEAK):
        ends = [e for e in _breaks(window, pattern) if floor <= e <= size]
        if ends:
            return start + max(ends)
    return limit


def chunk_text(text: str, size: int = 500, overlap: int = 50) -> list[Chunk]:
    """Split `text` into chunks of at most `size` characters; each next chunk starts `overlap`
    characters before the previous one ended (moved forward to a word/sentence start when one is
    near). Whitespace-only text gives no chunks."""
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"chunk overlap must be in [0, size), got {overlap} for size {size}")
    text = text.strip()
    chunks: list[Chunk] = []
    start = 0
    while start < len(text):
        end = _cut(text, start, size)
        piece = text[start:end].strip()
        if piece:
            lead = len(text[start:end]) - len(text[start:end].lstrip())
            chunks.append(Chunk(piece, start + lead, len(chunks)))
        if end >= len(text):
            break
        nxt = max(end - overlap, start + 1)
        # Start the overlap at a word boundary when one is close, not mid-word.
        space = text.find(" ", nxt, end)
        if overlap and 0 <= space < nxt + overlap // 2:
            nxt = space + 1
        start = nxt
    return chunks
