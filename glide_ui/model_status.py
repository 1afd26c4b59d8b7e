"""What the model manager reports: a model's weights and options for recipes, and the
status the page shows (what is loaded, fetched or loading). Plain data, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """What a recipe records about a model: its weights and its options."""

    name: str
    checkpoint: str  # sha256 of the checkpoint file, or "tiny-random-seed-N"
    options: dict[str, Any]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    device: str
    dtype: str
    bytes: int
    in_use: int


@dataclass(frozen=True)
class Fetching:
    name: str
    filename: str
    done: int
    total: int | None


@dataclass(frozen=True)
class ManagerStatus:
    model_set: str
    device: str
    dtype: str
    budget_bytes: int
    used_bytes: int
    loaded: list[LoadedModel] = field(default_factory=list)
    fetching: list[Fetching] = field(default_factory=list)
    loading: list[str] = field(default_factory=list)
    notice: str = ""
    compute_path: str = ""  # ComputePath.describe(): device, dtype and kernels
    finetunes: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> record
