"""The checkpoints there are: each file's name, URL, size and sha256 where published, the
errors about them, and the folders they are looked for in. No torch here."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from glide_ui.errors import GlideUIError

GLIDE_URL = "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/"
OPENAI_CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"
CHECKPOINTS_ENV = "GLIDE_CHECKPOINTS"
CACHE_ENV = "GLIDE_CACHE_DIR"

GLIDE_NAMES = ("base", "upsample", "base-inpaint", "upsample-inpaint", "clip/image-enc",
               "clip/text-enc")


class CheckpointError(GlideUIError):
    """A checkpoint that cannot be found, fetched or loaded; the message names the file."""


class DownloadError(CheckpointError):
    """The file could not be downloaded (no network, HTTP error, wrong size or hash)."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, corrupt, not a plain state dict, or does not fit the model."""


@dataclass(frozen=True)
class CheckpointSpec:
    """One downloadable file. `size`/`sha256` are None where no public value is known."""

    name: str
    filename: str
    url: str
    approx_size: int  # bytes, for progress and memory estimates before the file exists
    size: int | None = None
    sha256: str | None = None
    format: str = "state_dict"  # "state_dict" (torch.save of a dict) or "torchscript"


@dataclass(frozen=True)
class DownloadProgress:
    name: str
    filename: str
    done: int
    total: int | None


ProgressCallback = Callable[[DownloadProgress], None]

# No published size or hash exists for the GLIDE files. Their approximate size is the
# float32 payload: 4 bytes x the parameter count of the state-dict key lists in
# tests/fixtures/glide-reference/keys/ (the six sum to the 6.9 GB the GLIDE notes quote);
# the real file adds a little zip/pickle overhead. Checks for them: the server's
# Content-Length, then a clean weights-only load and a strict state-dict match.
_GLIDE_PARAMETERS = {
    "base": 385_030_726,
    "upsample": 398_361_286,
    "base-inpaint": 385_037_638,
    "upsample-inpaint": 398_368_198,
    "clip/image-enc": 86_443_776,
    "clip/text-enc": 71_679_488,
}

# OpenAI CLIP (the names clip-anytorch knows): the sha256 is the directory of the official
# URL; the sizes are those listed publicly for the same sha256-verified files.
_OPENAI_CLIP = {
    "RN50": ("RN50.pt", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
             255_827_503),
    "RN101": ("RN101.pt", "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599",
              291_791_292),
    "RN50x4": ("RN50x4.pt", "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd",
               421_854_225),
    "RN50x16": ("RN50x16.pt",
                "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", 661_125_706),
    "RN50x64": ("RN50x64.pt",
                "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c",
                1_353_500_174),
    "ViT-B/32": ("ViT-B-32.pt",
                 "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", 353_976_522),
    "ViT-B/16": ("ViT-B-16.pt",
                 "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", 350_837_078),
    "ViT-L/14": ("ViT-L-14.pt",
                 "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", 932_768_134),
    "ViT-L/14@336px": ("ViT-L-14-336px.pt",
                       "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                       934_088_680),
}


def _glide_spec(name: str) -> CheckpointSpec:
    filename = name.replace("clip/", "clip_").replace("-", "_") + ".pt"
    return CheckpointSpec(name, filename, GLIDE_URL + filename, 4 * _GLIDE_PARAMETERS[name])


def _openai_clip_spec(name: str) -> CheckpointSpec:
    filename, sha256, size = _OPENAI_CLIP[name]
    return CheckpointSpec(name, filename, f"{OPENAI_CLIP_URL}{sha256}/{filename}", size, size,
                          sha256, "torchscript")


REGISTRY: dict[str, CheckpointSpec] = {
    **{name: _glide_spec(name) for name in GLIDE_NAMES},
    **{name: _openai_clip_spec(name) for name in _OPENAI_CLIP},
}
OPENAI_CLIP_NAMES = tuple(_OPENAI_CLIP)


def get_spec(name: str) -> CheckpointSpec:
    if name not in REGISTRY:
        raise CheckpointError(f"Unknown checkpoint {name!r}; known: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


# ----------------------------------------------------------------------------- locations


def checkpoints_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user's own folder of checkpoints, if any: the argument, else GLIDE_CHECKPOINTS."""
    value = explicit if explicit is not None else os.environ.get(CHECKPOINTS_ENV)
    return Path(value).expanduser() if value else None


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where downloads go: the argument, else GLIDE_CACHE_DIR, else the user cache dir."""
    value = explicit if explicit is not None else os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    return Path(platformdirs.user_cache_dir("glide-ui", appauthor=False))


def locate(spec: CheckpointSpec, checkpoints: Path | None, cache: Path) -> Path | None:
    """The first existing copy: the explicit directory, then the cache."""
    for directory in (checkpoints, cache):
        if directory is not None and (directory / spec.filename).is_file():
            return directory / spec.filename
    return None
