"""Producer for tokenizer.json: both tokenizers recomputed for the fixture's prompts.

Header fields come from the tokenizer modules, so a changed constant fails the exact
comparison just like a changed token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glide_ui.glide import clip_tokenizer, tokenizer


def produce(rel: str, expected: dict[str, Any], ref_dir: Path) -> dict[str, Any]:
    return {
        "glide": _glide([e["prompt"] for e in expected["glide"]["entries"]]),
        "clip": _clip([e["prompt"] for e in expected["clip"]["entries"]]),
    }


def _entries(tok: Any, prompts: list[str], ctx: int, padded_field: str) -> list[dict]:
    """Each prompt's tokens, padded tokens and `padded_field` ("mask" or "len")."""
    entries = []
    for prompt in prompts:
        tokens = tok.encode(prompt)
        padded = tok.pad(tokens, ctx)
        extra = padded.mask if padded_field == "mask" else padded.length
        entries.append({"prompt": prompt, "tokens": tokens, "padded": padded.tokens,
                        padded_field: extra})
    return entries


def _glide(prompts: list[str]) -> dict[str, Any]:
    entries = _entries(tokenizer.get_glide_tokenizer(), prompts, tokenizer.TEXT_CTX, "mask")
    return {"text_ctx": tokenizer.TEXT_CTX, "n_vocab": tokenizer.N_VOCAB,
            "end_token": tokenizer.END_TOKEN, "entries": entries}


def _clip(prompts: list[str]) -> dict[str, Any]:
    entries = _entries(clip_tokenizer.get_clip_tokenizer(), prompts, clip_tokenizer.TEXT_CTX,
                       "len")
    return {"text_ctx": clip_tokenizer.TEXT_CTX, "start_token": clip_tokenizer.START_TOKEN,
            "end_token": clip_tokenizer.END_TOKEN, "pad_token": clip_tokenizer.PAD_TOKEN,
            "n_vocab": clip_tokenizer.N_VOCAB, "entries": entries}
