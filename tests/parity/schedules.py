"""Producer for schedules.pt: beta schedules and respacings, recomputed by create_diffusion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glide_ui.glide.diffusion import create_diffusion


def produce(rel: str, expected: dict[str, Any], ref: Path) -> dict[str, Any]:
    steps = expected["num_timesteps"]
    specs = list(expected["respacings"])  # inputs: the specs to respace with
    return {
        "num_timesteps": steps,
        "respacings": specs,
        "schedules": {name: _schedule(steps, name, specs) for name in expected["schedules"]},
    }


def _schedule(steps: int, name: str, specs: list[str]) -> dict[str, Any]:
    full = create_diffusion(steps, name, "")
    respaced = {}
    for spec in specs:
        diffusion = create_diffusion(steps, name, spec)
        respaced[spec] = {"timesteps": diffusion.timestep_map, "betas": diffusion.betas}
    return {"betas": full.betas, "alphas_cumprod": full.alphas_cumprod, "respaced": respaced}
