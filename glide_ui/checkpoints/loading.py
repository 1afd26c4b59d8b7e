"""Loading a checkpoint file safely: checked against its published size and hash, read
as tensors only (never code), assigned into a model built on the meta device; a bad
cached file set aside for a fresh download."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from glide_ui.checkpoints import hashes
from glide_ui.checkpoints.registry import CheckpointSpec, CorruptCheckpointError


def verify_local(spec: CheckpointSpec, path: Path) -> None:
    """Check a local copy against the published size and sha256, where they are known."""
    if spec.size is not None and path.stat().st_size != spec.size:
        raise CorruptCheckpointError(
            f"{path} is {path.stat().st_size} bytes, expected {spec.size} for {spec.name}.")
    if spec.sha256 is not None and hashes.file_sha256(path) != spec.sha256:
        raise CorruptCheckpointError(f"{path} does not have the sha256 of {spec.name} "
                                     f"({spec.sha256}).")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, memory-mapped; never runs code from the file."""
    try:
        state = _read_tensors(path)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():
            raise CorruptCheckpointError(
                f"{path} was refused: it holds Python objects whose loading would run code, "
                "not just tensors.") from error
        raise CorruptCheckpointError(f"{path} is corrupt: {_first_line(error)}") from error
    except Exception as error:  # the weights-only unpickler fails in many ways on garbage
        raise CorruptCheckpointError(f"{path} is truncated or corrupt: {_first_line(error)}") \
            from error
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CorruptCheckpointError(f"{path} is not a state dict (a dict of tensors).")
    return state


def _read_tensors(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except RuntimeError as error:
        if "mmap can only be used" not in str(error):
            raise
    # Not a zip-format file: either the legacy torch.save format (loaded without mmap) or
    # not a checkpoint at all, which this load reports.
    return torch.load(path, weights_only=True, map_location="cpu")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class _SkipMetaNormal(TorchFunctionMode):
    """Skips `normal_` on meta tensors: its values are never read, and torch's meta
    `normal_` imports its Python decompositions on first use (seconds per process)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) == "normal_":
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


@contextmanager
def meta_device() -> Iterator[None]:
    """Build modules without allocating their weights (filled by `load_into`)."""
    with torch.device("meta"), _SkipMetaNormal():
        yield


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """Make `model` (built on the meta device) use the checkpoint's tensors, no copy."""
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise CorruptCheckpointError(f"{path} does not fit the model: "
                                     f"{_first_line(error)}") from error
    left = [name for name, t in _tensors(model) if t.is_meta]
    if left:
        raise CorruptCheckpointError(f"{path} leaves tensors of the model unset: {left[:5]}")
    return model


def _tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()


def move_aside(path: Path) -> Path:
    """Rename a bad cached file to `<file>.corrupt` so the next attempt downloads it again."""
    target = path.with_name(path.name + ".corrupt")
    os.replace(path, target)
    hashes.hash_record_path(path).unlink(missing_ok=True)
    return target


@contextmanager
def set_aside_if_cached(path: Path, cache: Path) -> Iterator[None]:
    """Turn a bad file in the cache into a fresh download next time (files in the user's
    own checkpoints folder are left where they are); the error still propagates."""
    try:
        yield
    except CorruptCheckpointError as error:
        if path.parent.resolve() != cache.resolve() or not path.exists():
            raise
        moved = move_aside(path)
        raise CorruptCheckpointError(
            f"{error} The cached copy was moved to {moved}; the next attempt downloads it "
            "again.") from error
