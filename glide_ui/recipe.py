"""A recipe: everything needed to reproduce one image, as plain JSON-able data."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from glide_ui import __version__


@dataclass(frozen=True)
class Recipe:
    pipeline: str  # "text2im", "clip_guided", "inpaint"
    prompt: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # model name -> checkpoint sha256
    version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        data = json.loads(text)
        known = {k: data[k] for k in ("pipeline", "prompt", "seed", "settings", "models",
                                      "version") if k in data}
        return cls(**known)

    def parameters_line(self) -> str:
        """The one-line summary other diffusion UIs write into PNGs ("parameters")."""
        settings = ", ".join(f"{_title(k)}: {v}" for k, v in sorted(self.settings.items()))
        return f"{self.prompt}\nPipeline: {self.pipeline}, Seed: {self.seed}, {settings}, " \
               f"Version: glide-ui {self.version}"

    def file_stem(self) -> str:
        """A file name (without extension) that says what the image is:
        "glide-text2im-an-oil-painting-of-a-corgi-42"."""
        return f"glide-{self.pipeline}-{slug(self.prompt)}-{self.seed}"


SLUG_CHARACTERS, SLUG_BYTES = 40, 120


def slug(text: str) -> str:
    """`text` as a short, safe part of a file name: its words (letters, marks and digits
    of any script, NFKC-normalised and lower-case) joined by '-', at most SLUG_CHARACTERS
    characters and SLUG_BYTES bytes of UTF-8; "untitled" when none is left.

    "An oil painting of a corgi!" -> "an-oil-painting-of-a-corgi", "一只可爱的猫" ->
    "一只可爱的猫". Never a path separator, a character Windows reserves, a control or a
    leading dot: the name is valid on Linux, macOS and Windows.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in text)
    words = "-".join(kept.split())[:SLUG_CHARACTERS]
    while len(words.encode("utf-8")) > SLUG_BYTES:
        words = words[:-1]
    return words.rstrip("-") or "untitled"


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def finetune_notes(made: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """A warning per model whose fine-tune (or its scale) differs from the recipe's."""
    notes = []
    for name in sorted(made.keys() | here.keys()):
        was, now = made.get(name), here.get(name)
        if was == now:
            continue
        if was and not now:
            notes.append(f"It was made with the fine-tune {was['name']} (sha256 "
                         f"{was['sha256'][:12]}..., scale {was['scale']:g}) for {name}, which "
                         "this run does not use: the image will differ. Load it with "
                         "--finetune / finetunes= to make it again.")
        elif now and not was:
            notes.append(f"This run uses the fine-tune {now['name']} for {name}; the image "
                         "was made without one: the image will differ.")
        else:
            notes.append(f"It was made with the fine-tune {was['name']} at scale "
                         f"{was['scale']:g} for {name}; this run uses {now['name']} at scale "
                         f"{now['scale']:g}: the image will differ.")
    return notes
