"""Fine-tunes: a safetensors file holding a LoRA adapter or full weights for one GLIDE
model, with the model's options and the training recipe in its metadata.

A LoRA adapter is applied by merging it into the weights, W + scale * (alpha / rank) B A,
so a fine-tuned model runs every kernel the base model runs (prepacked ones included) at
the base model's speed and size. Scale 0 leaves the weights untouched: the base model's
pixels exactly. Full weights are blended, W + scale * (W_tuned - W) (scale 1: W_tuned).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from glide_ui.checkpoints import file_sha256
from glide_ui.errors import GlideUIError
from glide_ui.files import write_replacing

FORMAT = "glide-ui-finetune/1"
KINDS = ("lora", "full")
LORA_KEY = ".lora_"  # adapter keys: "<module>.lora_A.weight" / "<module>.lora_B.weight"


class FinetuneError(GlideUIError):
    """A fine-tune file that cannot be read or does not fit the model it is used with."""


@dataclass(frozen=True)
class Finetune:
    """A fine-tune file, read and checked. `tensors` are float32 CPU tensors."""

    path: Path
    model: str  # the GLIDE model it was trained from: base, upsample, ...
    kind: str  # "lora" or "full"
    options: dict[str, Any]  # the model's options it was trained with
    recipe: dict[str, Any]  # the training settings (data, steps, lr, seed, ...)
    tensors: dict[str, torch.Tensor]
    rank: int = 0
    alpha: float = 0.0
    base_checkpoint: str = ""  # the checkpoint id it was trained from

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    def record(self, scale: float) -> dict[str, Any]:
        """What a recipe keeps about this fine-tune used at `scale`."""
        return {"name": self.name, "sha256": self.sha256, "kind": self.kind,
                "scale": float(scale)}


def save_finetune(path: str | Path, tensors: dict[str, torch.Tensor], *, model: str, kind: str,
                  options: dict[str, Any], recipe: dict[str, Any], rank: int = 0,
                  alpha: float = 0.0, base_checkpoint: str = "") -> Path:
    """Write a fine-tune file (tensors as contiguous float32 CPU copies). Returns the path."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    metadata = {"format": FORMAT, "model": model, "kind": kind,
                "options": json.dumps(options, sort_keys=True),
                "recipe": json.dumps(recipe, sort_keys=True, default=str),
                "rank": str(rank), "alpha": str(alpha), "base_checkpoint": base_checkpoint}
    plain = {key: t.detach().to("cpu", torch.float32).contiguous() for key, t in tensors.items()}
    return write_replacing(path, save(plain, metadata=metadata))  # never a half file


def load_finetune(path: str | Path) -> Finetune:
    """Read a fine-tune file. Raises FinetuneError for a missing, damaged or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FinetuneError(f"No fine-tune file at {path}.")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as stream:
            metadata = stream.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise FinetuneError(f"{path} is not a readable safetensors file: {error}") from None
    if metadata.get("format") != FORMAT:
        raise FinetuneError(f"{path} is a safetensors file but not a glide-ui fine-tune "
                            f"(no format {FORMAT!r} in its metadata).")
    return Finetune(path=path, model=metadata["model"], kind=metadata["kind"],
                    options=json.loads(metadata["options"]),
                    recipe=json.loads(metadata.get("recipe") or "{}"), tensors=tensors,
                    rank=int(metadata.get("rank") or 0),
                    alpha=float(metadata.get("alpha") or 0.0),
                    base_checkpoint=metadata.get("base_checkpoint", ""))


def check_fits(finetune: Finetune, name: str, options: dict[str, Any]) -> None:
    """Raise FinetuneError unless `finetune` was trained from model `name` with `options`."""
    if finetune.model != name:
        raise FinetuneError(f"{finetune.name} is a fine-tune of {finetune.model}, "
                            f"not of {name}.")
    differ = sorted(key for key in options.keys() | finetune.options.keys()
                    if options.get(key) != finetune.options.get(key))
    if differ:
        raise FinetuneError(f"{finetune.name} was trained on a {name} model with other "
                            f"options ({', '.join(differ)}), e.g. the tiny test models "
                            "and the official ones; it cannot be used with this one.")


def lora_deltas(finetune: Finetune) -> dict[str, torch.Tensor]:
    """Module name -> (alpha / rank) B A, flattened to [out, in * k...] (float32)."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in finetune.tensors.items():
        module, _, part = key.partition(LORA_KEY)
        pairs.setdefault(module, {})[part.split(".")[0]] = tensor
    scaling = finetune.alpha / finetune.rank
    return {module: scaling * (p["B"].flatten(1) @ p["A"].flatten(1))
            for module, p in pairs.items()}


def apply_finetune(model: nn.Module, finetune: Finetune, scale: float = 1.0) -> None:
    """Change `model`'s weights in place by `finetune` at `scale` (0: untouched)."""
    if scale == 0:
        return
    with torch.no_grad():
        if finetune.kind == "lora":
            for module, delta in lora_deltas(finetune).items():
                weight = model.get_submodule(module).weight
                weight.add_(scale * delta.view(weight.shape).to(weight))
            return
        state = model.state_dict()
        for key, tuned in finetune.tensors.items():
            target = state[key]
            if scale == 1:
                target.copy_(tuned)
            else:
                target.lerp_(tuned.to(target), scale)


def finetune_model(path: str | Path) -> str:
    """The model a fine-tune file is for, from its metadata alone (no tensor is read)."""
    try:
        with safe_open(str(path), "pt") as stream:
            metadata = stream.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise FinetuneError(f"{path} is not a readable safetensors file: {error}") from None
    if metadata.get("format") != FORMAT:
        raise FinetuneError(f"{path} is not a glide-ui fine-tune (no format {FORMAT!r} in "
                            "its metadata).")
    return metadata["model"]


Choice = str | Path | tuple[str | Path, float]


def finetune_choices(choices: Mapping[str, Choice] | Sequence[Choice] | None
                     ) -> list[tuple[str, str | Path, float]]:
    """(model, path, scale) for each choice: a mapping model -> path or (path, scale), or a
    list of paths, (path, scale) pairs or "PATH[:SCALE]" texts (the model read from the
    file)."""
    if not choices:
        return []
    if isinstance(choices, Mapping):
        pairs = [(name, choice) for name, choice in choices.items()]
    else:
        pairs = [(None, choice) for choice in choices]
    found = []
    for name, choice in pairs:
        if isinstance(choice, tuple):
            path, scale = choice
        elif isinstance(choice, str):
            path, scale = parse_finetune(choice)
        else:
            path, scale = choice, 1.0
        found.append((name or finetune_model(path), path, float(scale)))
    return found


def parse_finetune(text: str) -> tuple[str, float]:
    """`PATH` or `PATH:SCALE` (scale a number, default 1) -> (path, scale)."""
    path, sep, scale = text.rpartition(":")
    if sep and path:
        try:
            return path, float(scale)
        except ValueError:
            pass
    return text, 1.0


@dataclass(frozen=True)
class FinetuneInfo:
    """A fine-tune file found on disk, from its metadata alone."""

    path: Path
    model: str
    kind: str
    steps: int  # optimizer steps it was trained for (at its last checkpoint)

    @property
    def label(self) -> str:
        return f"{self.path.stem} ({self.model}, {self.kind}, {self.steps} steps)"


def find_finetunes(folder: str | Path, depth: int = 3) -> list[FinetuneInfo]:
    """The fine-tune files in `folder` and its sub-folders up to `depth` levels, newest
    first; files that are not glide-ui fine-tunes are left out. [] for a missing folder."""
    folder = Path(folder)
    found = []
    for level in range(1, depth + 1):
        for path in folder.glob("/".join(["*"] * level) + ".safetensors"):
            try:
                with safe_open(str(path), "pt") as stream:
                    metadata = stream.metadata() or {}
            except (SafetensorError, OSError):
                continue
            if metadata.get("format") != FORMAT:
                continue
            recipe = json.loads(metadata.get("recipe") or "{}")
            found.append((path.stat().st_mtime, FinetuneInfo(
                path, metadata["model"], metadata["kind"], int(recipe.get("steps_done", 0)))))
    return [info for _, info in sorted(found, key=lambda pair: -pair[0])]
