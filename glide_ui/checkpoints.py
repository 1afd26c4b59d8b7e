"""Where weights come from: the registry, the cache, verified downloads, safe loading.

A checkpoint is looked for in an explicit directory (`--checkpoints DIR` /
`GLIDE_CHECKPOINTS`), then in the cache (`GLIDE_CACHE_DIR`, default the user's cache
directory), and is otherwise downloaded to the cache. Downloads stream to `<file>.part`
beside the final file, resume with a Range request, are verified, and only then renamed
into place, under a file lock shared by every process using the same directory.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
from filelock import FileLock
from torch import nn
from torch.overrides import TorchFunctionMode
from tqdm import tqdm

from glide_ui import __version__
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


def fetch(spec: CheckpointSpec, checkpoints: Path | None, cache: Path,
          progress: ProgressCallback | None = None) -> Path:
    """The path of a local copy of `spec`, downloading it to the cache if there is none."""
    return locate(spec, checkpoints, cache) or download(spec, cache, progress)


# ----------------------------------------------------------------------------- download


class _Interrupted(Exception):
    """The transfer stopped after some bytes arrived: worth resuming at once."""


def download(spec: CheckpointSpec, directory: Path, progress: ProgressCallback | None = None,
             *, retries: int = 3, timeout: float = 30.0) -> Path:
    """Download `spec` into `directory`, verified, renamed into place atomically.

    A leftover `<file>.part` is resumed. A transfer cut after some bytes arrived is resumed
    up to `retries` times; anything else raises DownloadError, keeping the part file so a
    later call resumes it (unless it was wrong, which is deleted).
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / spec.filename
    part = directory / (spec.filename + ".part")
    with FileLock(str(directory / (spec.filename + ".lock"))):
        if final.is_file():  # another process finished it while this one waited
            return final
        for attempt in range(retries + 1):
            try:
                total = _transfer(spec, part, progress, timeout)
                break
            except _Interrupted as error:
                if attempt == retries:
                    raise DownloadError(_by_hand(spec, directory, str(error))) from error
                time.sleep(0.1 * (attempt + 1))
        digest = _verify(spec, part, total)
        os.replace(part, final)
        if digest is not None:
            _write_hash_record(final, digest)
    return final


def _transfer(spec: CheckpointSpec, part: Path, progress: ProgressCallback | None,
              timeout: float) -> int:
    """Append the rest of the file to `part`; returns the file's total size."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"glide-ui/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(spec.url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        total = _range_not_satisfiable_total(error) if offset else None
        if total == offset:  # the part file already holds the whole file
            return total
        if total is not None:  # the part file is longer than the file: start again
            part.unlink()
            raise _Interrupted(f"HTTP {error.code}: partial download was stale") from error
        raise DownloadError(_by_hand(spec, part.parent, f"HTTP {error.code} {error.reason}")) \
            from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(_by_hand(spec, part.parent, _reason(error))) from error
    with response:
        offset, total = _resume_point(response, offset, spec)
        return _stream(spec, response, part, offset, total, progress)


def _resume_point(response: http.client.HTTPResponse, offset: int,
                  spec: CheckpointSpec) -> tuple[int, int | None]:
    """(where this response starts, total size); a server ignoring Range restarts at 0."""
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)",
                             response.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            total = match.group(2)
            return offset, int(total) if total != "*" else spec.size
        raise _Interrupted("the server answered a different range than asked")
    length = response.headers.get("Content-Length")
    return 0, int(length) if length else spec.size


def _stream(spec: CheckpointSpec, response: http.client.HTTPResponse, part: Path, offset: int,
            total: int | None, progress: ProgressCallback | None) -> int:
    done = offset
    with open(part, "ab" if offset else "wb") as out, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=spec.filename, disable=None) as bar:
        try:
            for chunk in _chunks(response):
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if progress is not None:
                    progress(DownloadProgress(spec.name, spec.filename, done, total))
        except (OSError, http.client.HTTPException) as error:
            if done > offset:
                raise _Interrupted(_reason(error)) from error
            raise DownloadError(_by_hand(spec, part.parent, _reason(error))) from error
    if total is not None and done < total:
        if done > offset:
            raise _Interrupted(f"connection closed at {done} of {total} bytes")
        raise DownloadError(_by_hand(spec, part.parent, "the server sent no data"))
    return done if total is None else total


def _chunks(response: http.client.HTTPResponse, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := response.read(size):
        yield chunk


def _range_not_satisfiable_total(error: urllib.error.HTTPError) -> int | None:
    if error.code != 416:
        return None
    match = re.fullmatch(r"bytes \*/(\d+)", (error.headers.get("Content-Range") or "").strip())
    return int(match.group(1)) if match else None


def _verify(spec: CheckpointSpec, part: Path, total: int) -> str | None:
    """Check the finished part file; a wrong one is deleted. Returns its sha256 if hashed."""
    size = part.stat().st_size
    expected_size = spec.size if spec.size is not None else total
    if size != expected_size:
        part.unlink()
        raise DownloadError(f"The download of {spec.filename} from {spec.url} is {size} bytes, "
                            f"expected {expected_size}; it was deleted. Try again.")
    if spec.sha256 is None:
        return None
    digest = _hash_file(part)
    if digest != spec.sha256:
        part.unlink()
        raise DownloadError(f"The download of {spec.filename} from {spec.url} has sha256 "
                            f"{digest}, expected {spec.sha256}; it was deleted. Try again.")
    return digest


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason if reason is not None else error) or type(error).__name__


def _by_hand(spec: CheckpointSpec, directory: Path, reason: str) -> str:
    return (f"Could not download {spec.filename} ({spec.name}) from {spec.url}: {reason}. "
            f"Download it by hand and put it at {directory / spec.filename}, or in a folder "
            f"given with --checkpoints or {CHECKPOINTS_ENV}.")


# ----------------------------------------------------------------------------- hashes


def file_sha256(path: Path) -> str:
    """The sha256 of a file, computed once and remembered in `<file>.sha256` beside it."""
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record = _hash_record_path(path)
    try:
        data = json.loads(record.read_text())
        if {k: data.get(k) for k in key} == key and isinstance(data.get("sha256"), str):
            return data["sha256"]
    except (OSError, ValueError):
        pass
    digest = _hash_file(path)
    _write_hash_record(path, digest)
    return digest


def _hash_record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_hash_record(path: Path, digest: str) -> None:
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        _hash_record_path(path).write_text(json.dumps(record))
    except OSError:
        pass  # a read-only checkpoints folder: the hash is recomputed next time


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- loading


def verify_local(spec: CheckpointSpec, path: Path) -> None:
    """Check a local copy against the published size and sha256, where they are known."""
    if spec.size is not None and path.stat().st_size != spec.size:
        raise CorruptCheckpointError(
            f"{path} is {path.stat().st_size} bytes, expected {spec.size} for {spec.name}.")
    if spec.sha256 is not None and file_sha256(path) != spec.sha256:
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
    _hash_record_path(path).unlink(missing_ok=True)
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
