"""OpenAI CLIP (the original, noise-free model) for guidance and for ranking results.

The network comes from clip-anytorch's `clip/model.py`, loaded by file path under a
private module name: `import clip` would run its __init__, which needs torchvision and
pkg_resources. Tokens come from glide_ui.glide.clip_tokenizer (the same BPE and vocabulary
as clip-anytorch's SimpleTokenizer, whose `clip/simple_tokenizer.py` is loadable the same
way with `clip_submodule("simple_tokenizer")`). Image preprocessing is done on tensors,
differentiably, so the same path serves CLIP guidance.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
import zipfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from glide_ui.errors import GlideUIError
from glide_ui.glide.clip_tokenizer import MERGES_FILE, get_clip_tokenizer
from glide_ui.glide.tokenizer import TokenizerDataError, package_dir

CLIP_PACKAGE = "clip"
CLIP_REQUIREMENT = "clip-anytorch==2.6.0"  # as in requirements-nodeps.txt
SUBMODULES = ("model", "simple_tokenizer")
# CLIP's per-channel statistics of images in [0, 1].
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


class MissingPackageError(GlideUIError):
    """An optional package that a feature needs is not installed; the message says how to
    install it."""


def clip_code_missing() -> str | None:
    """Why CLIP guidance and ranking cannot run here (a sentence naming the package and how
    to install it), or None when clip-anytorch's files are in place.

    Both CLIPs need its files: the noise-aware CLIP its tokenizer's merges, OpenAI's CLIP
    also its `model.py`.
    """
    try:
        folder = package_dir(CLIP_PACKAGE)
    except TokenizerDataError:
        folder = None
    if folder is not None and all((folder / name).is_file()
                                  for name in (MERGES_FILE, *(f"{m}.py" for m in SUBMODULES))):
        return None
    return (f"CLIP guidance and CLIP ranking need the clip-anytorch package (CLIP's tokenizer "
            f"and model code), which is not installed here. Install it with `pip install "
            f"--no-deps {CLIP_REQUIREMENT}` (without its dependencies: they would bring "
            f"torchvision); on a Hugging Face Space it comes from pre-requirements.txt.")


def require_clip_code() -> None:
    """Raise MissingPackageError (with how to install it) when clip-anytorch is missing."""
    message = clip_code_missing()
    if message is not None:
        raise MissingPackageError(message)


@cache
def clip_submodule(name: str) -> ModuleType:
    """clip-anytorch's `clip/<name>.py` ("model" or "simple_tokenizer"), never `import clip`.

    Loaded under a private module name. In the private copy of "model",
    `convert_weights` (which build_model uses to turn every weight into fp16) keeps the
    weights as they are, so weights reach the model without an fp16 round trip.
    """
    if name not in SUBMODULES:
        raise ValueError(f"unknown clip submodule {name!r}; expected one of {SUBMODULES}")
    path = package_dir(CLIP_PACKAGE) / f"{name}.py"
    private_name = f"_glide_ui_clip_{name}"
    spec = importlib.util.spec_from_file_location(private_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[private_name] = module
    spec.loader.exec_module(module)
    if name == "model":
        module.convert_weights = lambda model: None
    return module


def build_openai_clip(state_dict: dict[str, torch.Tensor],
                      dtype: torch.dtype = torch.float32) -> nn.Module:
    """clip-anytorch's CLIP model (eval mode, `dtype`) built and loaded from a state dict.

    The architecture (ViT or ResNet, widths, layers) is inferred from the keys and shapes;
    the caller's dict and the global RNG are left as they were.
    """
    with torch.random.fork_rng(devices=[]):  # its random init must not move the global RNG
        model = clip_submodule("model").build_model(dict(state_dict))
    return model.to(dtype).eval()


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript zip (it records `constants.pkl`), like the official .pt files."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def load_jit_or_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in `path`, on the CPU.

    The official OpenAI CLIP files (e.g. ViT-B-32.pt) are TorchScript archives, which
    `torch.load(weights_only=True)` refuses ("Cannot use weights_only=True with
    TorchScript archives"). They are read with `torch.jit.load`, keeping only
    `.state_dict()`. torch.jit.load does not unpickle with Python's pickle and does not
    execute Python code: the archive's code is TorchScript, compiled but never called here
    (a TorchScript `__setstate__` would run inside the TorchScript interpreter), so still
    load only files whose checksum you trust. Other files: `.safetensors` via safetensors,
    anything else via `torch.load(weights_only=True)`.
    """
    path = Path(path)
    if is_torchscript_archive(path):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*is deprecated")
            module = torch.jit.load(str(path), map_location="cpu")
        return dict(module.state_dict())
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def preprocess(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """CLIP's preprocessing on NCHW images in [-1, 1], differentiable.

    Shorter side resized to `size` (bicubic, antialiased like PIL's), centre crop to
    size x size, then CLIP's mean/std normalisation. Returns float32.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
    x = (images.float() + 1) / 2
    height, width = x.shape[-2:]
    short, long = min(height, width), max(height, width)
    resized_long = int(size * long / short)
    target = (size, resized_long) if height <= width else (resized_long, size)
    if (height, width) != target:
        x = F.interpolate(x, size=target, mode="bicubic", align_corners=False, antialias=True)
    top, left = (round((extent - size) / 2) for extent in target)
    x = x[..., top:top + size, left:left + size]
    mean, std = (torch.tensor(c, dtype=torch.float32, device=x.device)[:, None, None]
                 for c in (IMAGE_MEAN, IMAGE_STD))
    return (x - mean) / std


class OpenAIClip(nn.Module):
    """A CLIP model with tokenization and preprocessing: unit embeddings and cosines."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def input_resolution(self) -> int:
        return int(self.model.visual.input_resolution)

    @property
    def context_length(self) -> int:
        return int(self.model.context_length)

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, list[bool]]:
        """Token rows [N, context_length] and, per prompt, whether it was truncated.

        Rows are [start] + tokens + [end] padded with 0; a long prompt keeps its first
        context_length - 2 tokens, as clip.tokenize(truncate=True) does.
        """
        tokenizer = get_clip_tokenizer()
        rows = [tokenizer.tokenize(prompt, self.context_length) for prompt in prompts]
        device = self.model.token_embedding.weight.device
        tokens = torch.tensor([row.tokens for row in rows], dtype=torch.long, device=device)
        return tokens, [row.truncated for row in rows]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings [N, D] (float32) of NCHW images in [-1, 1]; differentiable."""
        pixels = preprocess(images, self.input_resolution)
        return _unit(self.model.encode_image(pixels))

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit embeddings [P, D] (float32) of the prompts."""
        return _unit(self.model.encode_text(self.tokenize(prompts)[0]))

    def similarity(self, images: torch.Tensor, prompt: str) -> torch.Tensor:
        """Cosine similarity [N] of each image with the prompt."""
        return self.encode_images(images) @ self.encode_text([prompt])[0]


def _unit(z: torch.Tensor) -> torch.Tensor:
    z = z.float()
    return z / z.norm(dim=-1, keepdim=True)


def tiny_openai_clip_state_dict(seed: int = 0, *, embed_dim: int = 32, width: int = 64,
                                layers: int = 1, patch_size: int = 32,
                                image_resolution: int = 224, vocab_size: int = 49408,
                                context_length: int = 77) -> dict[str, torch.Tensor]:
    """A small random ViT CLIP state dict (float32), the same for the same arguments.

    build_model gives each transformer width // 64 heads, so widths are multiples of 64.
    Values: norm gains 1 + 0.1 N, other vectors 0.1 N, matrices N(0, 1/fan_in),
    logit_scale log(100). The global RNG is not touched.
    """
    if width % 64:
        raise ValueError(f"width {width} must be a multiple of 64 (CLIP uses width // 64 heads)")
    # Built on the CPU (the meta device would import torch's decompositions, seconds)
    # with the global RNG restored afterwards; only its keys and shapes are used.
    with torch.random.fork_rng(devices=[]):
        skeleton = clip_submodule("model").CLIP(
            embed_dim, image_resolution, layers, width, patch_size,
            context_length, vocab_size, width, width // 64, layers)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, meta in skeleton.state_dict().items():
        noise = torch.randn(meta.shape, generator=generator)
        if key == "logit_scale":
            state[key] = torch.full(meta.shape, math.log(100.0))
        elif meta.ndim == 1 and ".ln_" in f".{key}" and key.endswith(".weight"):
            state[key] = 1 + 0.1 * noise
        elif meta.ndim <= 1:
            state[key] = 0.1 * noise
        else:
            state[key] = noise * (meta.numel() // meta.shape[0]) ** -0.5
    return state


def tiny_openai_clip(seed: int = 0) -> OpenAIClip:
    """An OpenAIClip around tiny_openai_clip_state_dict(seed), for offline tests."""
    return OpenAIClip(build_openai_clip(tiny_openai_clip_state_dict(seed)))
