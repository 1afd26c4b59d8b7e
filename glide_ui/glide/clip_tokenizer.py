"""CLIP's BPE tokenizer (word-final symbols carry "</w>"), as the noise-aware CLIP uses it.

Text is repaired with ftfy, HTML-unescaped twice, whitespace-collapsed, stripped and
lower-cased, then split and merged with CLIP's 48,894 merges (read from the
bpe_simple_vocab_16e6.txt.gz that clip-anytorch ships; its `clip` package is located but
never imported, since its __init__ pulls in torchvision).
"""

from __future__ import annotations

import gzip
import html
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path

import ftfy
import regex

from .tokenizer import byte_alphabet, package_dir, read_verified

TEXT_CTX = 77
N_VOCAB = 49408
START_TOKEN = 49406
END_TOKEN = 49407
PAD_TOKEN = 0
START_TEXT = "<|startoftext|>"
END_TEXT = "<|endoftext|>"
WORD_END = "</w>"

MERGES_PACKAGE = "clip"
MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
# The vocabulary holds 256 bytes, the same 256 as word ends, the merges, and 2 specials.
N_MERGES = N_VOCAB - 2 * 256 - 2

# CLIP's split: its two special strings, contractions, letter runs, single digits, runs of
# other non-space symbols. Case-insensitive like CLIP's (which matters for a few letters
# whose lower case still case-folds, e.g. "'ſ" matching 's).
SPLIT = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
WHITESPACE = regex.compile(r"\s+")


@dataclass(frozen=True)
class ClipTokens:
    """A prompt ready for a CLIP text encoder.

    `tokens` (length text_ctx) is [start] + BPE tokens + [end] right-padded with 0;
    `length` counts the entries before the padding (the end token is at length - 1).
    `n_tokens` is how many BPE tokens the whole prompt has; `truncated` is True when only
    the first text_ctx - 2 of them fit.
    """

    tokens: list[int]
    length: int
    n_tokens: int
    truncated: bool


def clean(text: str) -> str:
    """CLIP's text normalisation, applied before splitting."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return WHITESPACE.sub(" ", text).strip().lower()


def read_merges(data: bytes) -> list[tuple[str, str]]:
    """The first N_MERGES merge rules of the gzipped merges file (after its header line)."""
    lines = gzip.decompress(data).decode("utf-8").split("\n")[1:N_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != N_MERGES or any(len(pair) != 2 for pair in merges):
        raise ValueError(f"{MERGES_FILE} does not hold {N_MERGES} merge rules")
    return merges


class ClipTokenizer:
    """Byte-level BPE with "</w>" word ends and CLIP's vocabulary of 49,408 tokens."""

    start_token = START_TOKEN
    end_token = END_TOKEN
    pad_token = PAD_TOKEN
    n_vocab = N_VOCAB

    def __init__(self, merges: list[tuple[str, str]]) -> None:
        self._alphabet = byte_alphabet()
        symbols = list(self._alphabet.values())
        vocab = [*symbols, *(s + WORD_END for s in symbols), *(a + b for a, b in merges),
                 START_TEXT, END_TEXT]
        self._ids = {symbol: i for i, symbol in enumerate(vocab)}
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._word_ids = lru_cache(maxsize=65536)(self._bpe_ids)

    def _merge(self, symbols: list[str]) -> list[str]:
        """Apply merges lowest rank first, each pass merging every occurrence left to right."""
        while len(symbols) > 1:
            pairs = set(pairwise(symbols))
            best = min(pairs, key=lambda pair: self._ranks.get(pair, len(self._ranks)))
            if best not in self._ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def _bpe_ids(self, word: str) -> tuple[int, ...]:
        if word in (START_TEXT, END_TEXT):
            return (self._ids[word],)
        chars = [self._alphabet[b] for b in word.encode("utf-8")]
        chars[-1] += WORD_END
        return tuple(self._ids[symbol] for symbol in self._merge(chars))

    def encode(self, text: str) -> list[int]:
        """BPE tokens of the cleaned text, without start/end tokens."""
        return [i for word in SPLIT.findall(clean(text)) for i in self._word_ids(word)]

    def pad(self, tokens: list[int], text_ctx: int = TEXT_CTX) -> ClipTokens:
        """[start] + first text_ctx - 2 tokens + [end], right-padded with 0 to text_ctx."""
        body = [self.start_token, *tokens[:text_ctx - 2], self.end_token]
        return ClipTokens(
            tokens=body + [self.pad_token] * (text_ctx - len(body)),
            length=len(body),
            n_tokens=len(tokens),
            truncated=len(tokens) > text_ctx - 2,
        )

    def tokenize(self, prompt: str, text_ctx: int = TEXT_CTX) -> ClipTokens:
        return self.pad(self.encode(prompt), text_ctx)


def default_merges_path() -> Path:
    return package_dir(MERGES_PACKAGE) / MERGES_FILE


def load_clip_tokenizer(merges_path: Path | None = None) -> ClipTokenizer:
    """Build the tokenizer from the verified merges file (default: clip-anytorch's)."""
    path = default_merges_path() if merges_path is None else Path(merges_path)
    return ClipTokenizer(read_merges(read_verified(path, MERGES_SHA256)))


@cache
def get_clip_tokenizer() -> ClipTokenizer:
    """The process-wide CLIP tokenizer (the merges load once)."""
    return load_clip_tokenizer()
