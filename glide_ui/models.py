"""What is loaded where: lazy loading, a memory budget with LRU eviction, status for the UI.

`ModelManager.get(name)` returns a ready model (eval mode, no gradients, on the chosen
device and dtype), loading it the first time. `with manager.use("base", "upsample") as
(base, up):` also pins the models, so no other request evicts them while this one runs.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from glide_ui import checkpoints as ckpt
from glide_ui import finetunes as ft
from glide_ui import heap
from glide_ui.compute import ComputePath, choose_path
from glide_ui.errors import GlideUIError
from glide_ui.glide.nn import prepack_allowance, resident_bytes
from glide_ui.glide.options import MODEL_NAMES
from glide_ui.memory_budget import (
    MEMORY_ENV,
    bytes_as,
    default_budget,
    format_bytes,
    model_bytes,
    parse_memory,
)
from glide_ui.model_build import (
    NAMES,
    build_network,
    build_tiny,
    load_openai_clip,
    model_options,
    prepare,
    tiny_seed,
)
from glide_ui.model_status import Fetching, LoadedModel, ManagerStatus, ModelInfo

log = logging.getLogger(__name__)

MODEL_SETS = ("official", "tiny")
TINY_CHECKPOINT_PREFIX = "tiny-random-seed-"  # the checkpoint id of a tiny model: + its seed
TINY_NOTICE = ("Tiny models: random weights for testing the app offline. "
               "They make noise, not pictures.")


class ModelMemoryError(GlideUIError):
    """A model does not fit in the memory budget, even after releasing unused models."""


@dataclass
class _Entry:
    model: nn.Module
    weights: int
    last_used: int
    in_use: int = 0
    allowance: int = 0  # kept for prepacked weight copies that do not replace the weights

    @property
    def bytes(self) -> int:
        """What the model holds (a packed weight in place of its plain tensor), at least
        what it was given room for."""
        return max(self.weights + self.allowance, resident_bytes(self.model))


# ----------------------------------------------------------------------------- manager


class ModelManager:
    """Loads models on first use, keeps them within a memory budget, reports status.

    model_set: "official" (checkpoint files) or "tiny" (seeded random weights, no files).
    max_memory: bytes (or "8GB") the weights may take; default GLIDE_MAX_MEMORY, else a
    share of the RAM / VRAM. on_progress: called with download progress (any thread).
    finetunes: model name -> fine-tune file or (file, scale), or a list of files, (file,
    scale) pairs or "FILE[:SCALE]" texts (each file names its model); see `use_finetune`.
    """

    def __init__(self, model_set: str = "official", device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None, max_memory: int | str | None = None,
                 checkpoints_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 on_progress: Callable[[ckpt.DownloadProgress], None] | None = None,
                 finetunes: Mapping[str, ft.Choice] | Sequence[ft.Choice] | None = None
                 ) -> None:
        if model_set not in MODEL_SETS:
            raise GlideUIError(f"Unknown model set {model_set!r}; use one of {MODEL_SETS}.")
        self.model_set = model_set
        self.path = choose_path(device, dtype)
        self.device, self.dtype = self.path.device, self.path.dtype
        if self.path.notice:
            log.warning(self.path.notice)
        if self.device.type == "cpu":
            heap.keep_heap()
        self.max_memory = (parse_memory(max_memory) if max_memory is not None
                           else default_budget(self.device))
        self.checkpoints_dir = ckpt.checkpoints_dir(checkpoints_dir)
        self.cache_dir = ckpt.cache_dir(cache_dir)
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, _Entry] = {}
        self._reserved: dict[str, int] = {}
        self._fetching: dict[str, Fetching] = {}
        self._paths: dict[str, Path] = {}
        self._hashes: dict[str, str] = {}
        self._clock = itertools.count()
        self._finetunes: dict[str, tuple[ft.Finetune, float]] = {}
        for name, path, scale in ft.finetune_choices(finetunes):
            self.use_finetune(name, path, scale)

    @property
    def tiny(self) -> bool:
        return self.model_set == "tiny"

    @property
    def names(self) -> tuple[str, ...]:
        return NAMES

    # ------------------------------------------------------------------ public

    def get(self, name: str) -> nn.Module:
        """The ready model `name`, loaded on first use (not pinned: see `use`)."""
        return self._acquire(name, pin=False)

    @contextmanager
    def use(self, *names: str) -> Iterator[tuple[nn.Module, ...]]:
        """Pin models for the length of a request: `with m.use("base") as (base,):`."""
        pinned: list[str] = []
        try:
            models = []
            for name in names:
                models.append(self._acquire(name, pin=True))
                pinned.append(name)
            yield tuple(models)
        finally:
            with self._lock:
                for name in pinned:
                    entry = self._entries[name]
                    entry.in_use -= 1
                    entry.last_used = next(self._clock)
                idle = not any(e.in_use for e in self._entries.values())
            if idle and self.device.type == "cpu":
                heap.release_heap()  # the request's activations, kept between its steps

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return name in self._entries

    def release(self, name: str) -> bool:
        """Unload `name` unless a request is using it; True if it was unloaded."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.in_use:
                return False
            del self._entries[name]
        self._free_memory()
        return True

    # ------------------------------------------------------------------ fine-tunes

    def use_finetune(self, name: str, path: str | os.PathLike | None,
                     scale: float = 1.0) -> None:
        """Run `name` with the fine-tune file at `path` (LoRA merged at `scale`, full
        weights blended by it), or as published for None. Takes effect at the next load:
        a loaded copy is released. Raises FinetuneError for a file that does not fit
        `name`, GlideUIError while a request is using `name`."""
        self._check_name(name)
        chosen = None
        if path is not None:
            finetune = ft.load_finetune(path)
            ft.check_fits(finetune, name, self.options(name))
            chosen = (finetune, float(scale))
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.in_use:
                raise GlideUIError(f"{name} is in use; change its fine-tune when the "
                                   "running request ends.")
            self._entries.pop(name, None)
            if chosen is None:
                self._finetunes.pop(name, None)
            else:
                self._finetunes[name] = chosen

    def finetune_record(self, name: str) -> dict[str, Any] | None:
        """What a recipe records about `name`'s fine-tune (name, sha256, kind, scale)."""
        with self._lock:
            chosen = self._finetunes.get(name)
        return None if chosen is None else chosen[0].record(chosen[1])

    def training_copy(self, name: str) -> nn.Module:
        """A fresh float32 CPU copy of `name`'s published (or tiny) weights, contiguous,
        in train mode, outside the budget: what a fine-tuning run starts from."""
        self._check_name(name)
        options = self.options(name)
        if self.tiny:
            model = build_tiny(name, options, ComputePath(torch.device("cpu"), torch.float32))
        else:
            model = self._load_official(name, options)
        return model.float().train()

    def options(self, name: str) -> dict[str, Any]:
        self._check_name(name)
        return model_options(name, self.tiny)

    def checkpoint_id(self, name: str) -> str:
        """sha256 of the checkpoint file (fetched if needed), or "tiny-random-seed-N"."""
        self._check_name(name)
        if self.tiny:
            return f"{TINY_CHECKPOINT_PREFIX}{tiny_seed(name)}"
        with self._lock:
            if name in self._hashes:
                return self._hashes[name]
            path = self._paths.get(name)
        digest = ckpt.file_sha256(path or self._fetch(ckpt.get_spec(name)))
        with self._lock:
            self._hashes[name] = digest
        return digest

    def known_checkpoint_id(self, name: str) -> str | None:
        """`checkpoint_id(name)` where it is known without reading or fetching a file (tiny
        models, a file hashed already, a published sha256), else None."""
        self._check_name(name)
        if self.tiny:
            return self.checkpoint_id(name)
        with self._lock:
            known = self._hashes.get(name)
        return known or ckpt.get_spec(name).sha256

    @property
    def place(self) -> tuple[str, str]:
        """(device, dtype) as recipes record them, e.g. ("cpu", "float32"): plain strings,
        so the page can compare them without torch."""
        return str(self.device), _dtype_name(self.dtype)

    def info(self, name: str) -> ModelInfo:
        return ModelInfo(name, self.checkpoint_id(name), self.options(name))

    def status(self) -> ManagerStatus:
        with self._lock:
            loaded = [LoadedModel(n, str(self.device), _dtype_name(self.dtype), e.bytes, e.in_use)
                      for n, e in sorted(self._entries.items(), key=lambda kv: -kv[1].last_used)]
            return ManagerStatus(
                self.model_set, str(self.device), _dtype_name(self.dtype), self.max_memory,
                sum(m.bytes for m in loaded), loaded,
                list(self._fetching.values()), list(self._reserved),
                " ".join(n for n in (TINY_NOTICE if self.tiny else "", self.path.notice) if n),
                self.path.describe(),
                {name: {"name": f.name, "path": str(f.path), "kind": f.kind, "scale": scale}
                 for name, (f, scale) in sorted(self._finetunes.items())})

    # ------------------------------------------------------------------ loading

    def _check_name(self, name: str) -> None:
        if name not in NAMES:
            raise GlideUIError(f"Unknown model {name!r}; known: {', '.join(NAMES)}.")

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def _acquire(self, name: str, pin: bool) -> nn.Module:
        self._check_name(name)
        with self._name_lock(name):
            model = self._lookup(name, pin)
            if model is not None:
                return model
            need = self._estimate(name)
            with self._lock:
                self._make_room(name, need)
                self._reserved[name] = need
            try:
                model = self._load(name)
            finally:
                with self._lock:
                    del self._reserved[name]
            with self._lock:
                weights = model_bytes(model)
                allowance = self._allowance(name, model)
                self._make_room(name, weights + allowance)  # in case the estimate was low
                self._entries[name] = _Entry(model, weights, next(self._clock), int(pin),
                                             allowance)
            return model

    def _lookup(self, name: str, pin: bool) -> nn.Module | None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return None
            entry.last_used = next(self._clock)
            entry.in_use += int(pin)
            return entry.model

    def _estimate(self, name: str) -> int:
        """Bytes `name` will take on the device, known before loading it."""
        if self.tiny:
            return 0  # a few MB: counted once built
        if name in ckpt.OPENAI_CLIP_NAMES:
            # The official files hold fp16 weights (plus a little TorchScript code).
            return ckpt.get_spec(name).approx_size * self.dtype.itemsize // 2
        with ckpt.meta_device():
            model = build_network(name, self.options(name))
        return bytes_as(model, self.dtype) + self._allowance(name, model)

    def _allowance(self, name: str, model: nn.Module) -> int:
        """Room for the prepacked weight copies the GLIDE UNets make (bf16 on the CPU)."""
        return prepack_allowance(model, self.dtype, self.device) if name in MODEL_NAMES else 0

    def _make_room(self, name: str, need: int) -> None:
        """Evict least recently used, unpinned models until `need` fits (lock held)."""
        if need > self.max_memory:
            raise ModelMemoryError(
                f"{name} needs {format_bytes(need)}, more than the memory budget of "
                f"{format_bytes(self.max_memory)}; raise it with --max-memory or {MEMORY_ENV}.")
        used = sum(e.bytes for e in self._entries.values()) + sum(self._reserved.values())
        evicted = False
        for victim in sorted((n for n, e in self._entries.items() if not e.in_use),
                             key=lambda n: self._entries[n].last_used):
            if used + need <= self.max_memory:
                break
            used -= self._entries.pop(victim).bytes
            evicted = True
        if evicted:
            self._free_memory()
        if used + need > self.max_memory:
            busy = ", ".join(n for n, e in self._entries.items() if e.in_use) or "none"
            raise ModelMemoryError(
                f"{name} needs {format_bytes(need)} but only "
                f"{format_bytes(self.max_memory - used)} of the "
                f"{format_bytes(self.max_memory)} budget is free while models are in use ({busy}) "
                f"or loading. Try again when the running request ends, or raise --max-memory.")

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        else:
            heap.release_heap()

    def _load(self, name: str) -> nn.Module:
        options = self.options(name)
        if self.tiny:
            model = build_tiny(name, options, self.path)
        else:
            model = self._load_official(name, options)
        with self._lock:
            chosen = self._finetunes.get(name)
        if chosen is not None:
            ft.apply_finetune(model.float(), *chosen)
        return prepare(model, self.path)

    def _load_official(self, name: str, options: dict[str, Any]) -> nn.Module:
        spec = ckpt.get_spec(name)
        path = self._fetch(spec)
        with ckpt.set_aside_if_cached(path, self.cache_dir):
            ckpt.verify_local(spec, path)
            if spec.format == "torchscript":
                model = load_openai_clip(path)
            else:
                with ckpt.meta_device():
                    model = build_network(name, options)
                ckpt.load_into(model, ckpt.load_state_dict(path), path)
        with self._lock:
            self._paths[name] = path
        return model

    def _fetch(self, spec: ckpt.CheckpointSpec) -> Path:
        def progress(event: ckpt.DownloadProgress) -> None:
            with self._lock:
                self._fetching[spec.name] = Fetching(event.name, event.filename, event.done,
                                                     event.total)
            if self._on_progress is not None:
                self._on_progress(event)

        try:
            return ckpt.fetch(spec, self.checkpoints_dir, self.cache_dir, progress)
        finally:
            with self._lock:
                self._fetching.pop(spec.name, None)



def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
