"""Compare what we compute with a reference fixture, by the manifest's rules."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted path, leaf) for every leaf: dict keys joined by '.', list items as [i]."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def compare(actual: Any, expected: Any, atol_by_key: dict[str, float], float64_atol: float = 0.0):
    """Return a list of mismatch descriptions (empty when everything agrees).

    Float32 tensors named in `atol_by_key` must be present and within their atol. Other
    float32 tensors are inputs: checked only if `actual` carries them. Integer/bool
    tensors, strings, ints and bools that `actual` carries must match exactly; float64
    tensors within `float64_atol`.
    """
    got = dict(leaves(actual))
    problems = []
    for key in atol_by_key:
        if key not in got:
            problems.append(f"{key}: not computed")
    for key, want in leaves(expected):
        if key not in got:
            continue
        problem = _compare_leaf(got[key], want, atol_by_key.get(key), float64_atol)
        if problem:
            problems.append(f"{key}: {problem}")
    return problems


def _compare_leaf(have: Any, want: Any, atol: float | None, float64_atol: float) -> str | None:
    if isinstance(want, torch.Tensor):
        if not isinstance(have, torch.Tensor):
            return f"expected a tensor, got {type(have).__name__}"
        have = have.detach().cpu()
        if have.shape != want.shape:
            return f"shape {tuple(have.shape)} != {tuple(want.shape)}"
        if want.dtype == torch.float64:
            diff = (have.double() - want).abs().max().item() if want.numel() else 0.0
            return None if diff <= float64_atol else f"max |diff| {diff:.3g} > {float64_atol}"
        if want.is_floating_point():
            if atol is None:
                return None if torch.equal(have.to(want.dtype), want) else "input differs"
            diff = (have.float() - want).abs().max().item() if want.numel() else 0.0
            if math.isnan(diff) or diff > atol:
                return f"max |diff| {diff:.3g} > atol {atol}"
            return None
        if have.dtype != want.dtype or not torch.equal(have, want):
            return "integer/bool tensor differs"
        return None
    if isinstance(want, float) and not isinstance(want, bool):
        return None if have == want else f"{have!r} != {want!r}"
    return None if type(have) is type(want) and have == want else f"{have!r} != {want!r}"
