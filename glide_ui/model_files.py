"""The checkpoint files as a user manages them: which each command needs, fetching and
verifying them ahead of time, and what is here (for `glide-ui download` and `models`).

Importing it loads no torch (the command's help names the groups); the functions do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glide_ui.errors import RequestError
from glide_ui.settings import JOBS

# What each command loads: a job's models as the registry declares them, and the ranker's.
GROUPS: dict[str, tuple[str, ...]] = {**{job.command: job.models for job in JOBS.values()},
                                      "rank": ("ViT-B/32",)}
APP_MODELS = tuple(dict.fromkeys(name for names in GROUPS.values() for name in names))


def resolve_names(names: Sequence[str]) -> list[str]:
    """Model names from model names, group names (`GROUPS`) and "all" (also for none),
    each once, in order. RequestError naming the choices for anything else."""
    from glide_ui import checkpoints as ckpt

    chosen: list[str] = []
    for name in names or ["all"]:
        if name == "all":
            chosen += APP_MODELS
        elif name in GROUPS:
            chosen += GROUPS[name]
        elif name in ckpt.REGISTRY:
            chosen.append(name)
        else:
            raise RequestError(f"Unknown model {name!r}: give model names "
                               f"({', '.join(ckpt.REGISTRY)}) or groups "
                               f"({', '.join(GROUPS)}, all).")
    return list(dict.fromkeys(chosen))


def download(name: str, checkpoints: str | None = None) -> Path:
    """The verified file of model `name`, fetched first when it is not here.

    A file with a published sha256 is checked against it; one without must load into its
    model, tensor for tensor. Raises CheckpointError (DownloadError, CorruptCheckpointError).
    """
    from glide_ui import checkpoints as ckpt
    from glide_ui.models import ModelManager

    # fp32 on the CPU: the weights stay memory-mapped, so a check costs little memory.
    manager = ModelManager(device="cpu", dtype="fp32", max_memory=2**62,
                           checkpoints_dir=checkpoints)
    spec = ckpt.get_spec(name)
    if spec.sha256 is not None:
        path = ckpt.fetch(spec, manager.checkpoints_dir, manager.cache_dir)
        ckpt.verify_local(spec, path)
        return path
    manager.get(name)
    manager.release(name)
    return ckpt.locate(spec, manager.checkpoints_dir, manager.cache_dir)


def model_status(checkpoints: str | None, tiny: bool) -> dict[str, Any]:
    """Every model the app uses (and any other checkpoint that is here): its file, status
    ("built in", "in checkpoints folder", "cached", "partly downloaded", "missing"), path,
    bytes, expected bytes, URL and the commands that use it; plus the folders."""
    from glide_ui import checkpoints as ckpt

    folder, cache = ckpt.checkpoints_dir(checkpoints), ckpt.cache_dir()
    others = [name for name, spec in ckpt.REGISTRY.items()
              if name not in APP_MODELS and ckpt.locate(spec, folder, cache)]
    rows = [_row(name, folder, cache, tiny) for name in (*APP_MODELS, *others)]
    return {"model_set": "tiny" if tiny else "official", "cache_dir": str(cache),
            "checkpoints_dir": str(folder) if folder else None, "models": rows}


def _row(name: str, folder: Path | None, cache: Path, tiny: bool) -> dict[str, Any]:
    from glide_ui import checkpoints as ckpt

    spec = ckpt.REGISTRY[name]
    path = None if tiny else ckpt.locate(spec, folder, cache)
    part = cache / f"{spec.filename}.part"
    if tiny:
        status = "built in"
    elif path is not None:
        status = "in checkpoints folder" if path.parent == folder else "cached"
    else:
        status = "partly downloaded" if part.is_file() else "missing"
    return {
        "name": name, "file": spec.filename, "status": status,
        "path": str(path) if path else None,
        "bytes": path.stat().st_size if path else None,
        "downloaded_bytes": part.stat().st_size if status == "partly downloaded" else None,
        "expected_bytes": spec.size or spec.approx_size, "url": spec.url,
        "used_by": [group for group, members in GROUPS.items() if name in members],
    }
