"""How prompts are searched: the text the full-text index holds, and the query for the words
typed in the search box.

A word of a language written with spaces (Latin, Cyrillic, Greek, Arabic, Devanagari…) is
found by its prefix: "corg" finds "corgi". Chinese, Japanese, Thai, Lao, Khmer, Myanmar and
the other scripts written without spaces between words, and Korean (whose spaced units
carry particles and compounds: "고양이가"), are indexed one character (grapheme) at a time,
so that a word in them is found wherever it stands, as a run of characters: "可爱" and "猫"
find "一只可爱的猫", "고양이" finds "고양이가".
"""

from __future__ import annotations

import unicodedata

import regex

# The scripts searched by character (by Unicode script extensions, so that marks and signs
# shared with them, like the Japanese prolonged sound mark, go with them).
UNSPACED_SCRIPTS = ("Han", "Hiragana", "Katakana", "Hangul", "Bopomofo", "Yi", "Thai", "Lao",
                    "Khmer", "Myanmar", "Tibetan", "Tai_Le", "New_Tai_Lue", "Tai_Tham",
                    "Tai_Viet", "Balinese", "Javanese")
# What a word is made of (Unicode general categories): the index's tokenizer and the
# query's split of the typed words both use these.
WORD_CATEGORIES = ("L", "N", "M", "Co")

TOKENIZER = ("unicode61 remove_diacritics 2 categories '"
             + " ".join(f"{name}*" if len(name) == 1 else name for name in WORD_CATEGORIES)
             + "'")
"""The FTS5 tokenizer of the index (marks are part of a word: Thai and Devanagari keep
theirs)."""

_UNSPACED = regex.compile("(?=[" + "".join(f"\\p{{scx={name}}}" for name in UNSPACED_SCRIPTS)
                          + r"])\X")
_WORD = regex.compile("[" + "".join(f"\\p{{{name}}}" for name in WORD_CATEGORIES) + "]+")


def searchable(text: str) -> str:
    """`text` as the index holds it: NFKC-normalised (full-width letters are plain ones),
    each character of an unspaced script standing apart as a word of its own."""
    return _UNSPACED.sub(r" \g<0> ", unicodedata.normalize("NFKC", text))


def match_expression(words: str) -> str:
    """An FTS5 query for `words`: every word must be found in the prompt, a word of a spaced
    script as the start of a prompt word, one of an unspaced script as a run of characters
    anywhere. Only letters, digits and marks are kept, so no input is an FTS syntax error."""
    return " ".join(f'"{" ".join(searchable(word).split())}"*'
                    for word in _WORD.findall(unicodedata.normalize("NFKC", words).lower()))
