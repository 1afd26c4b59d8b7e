"""Widget values <-> request fields, both ways (requests out, recipes back into widgets)."""

from __future__ import annotations

from typing import Any

from glide_ui.pipelines.recipe import Recipe
from glide_ui.pipelines.requests import SOLVER_LABELS

FILMSTRIP_FRAMES = 24  # per stage, when the page's "Keep a filmstrip" is ticked


def sampling_fields(sampler: str, steps: float, upsample: bool, upsample_steps: str,
                    upsample_temp: float, filmstrip: bool = False) -> dict[str, Any]:
    """Request keyword arguments from the "Advanced" sampler widgets.

    Numbers are passed on as sent: the request's validation refuses a fractional, NaN or
    non-numeric value with a message naming the field (a conversion here would crash on
    them, or quietly turn 2.5 steps into 2). A solver runs the upsampler too; the
    reference samplers leave it to the request's default (the reference notebook's)."""
    solver = {"upsample_sampler": sampler} if sampler in SOLVER_LABELS else {}
    return {
        **solver,
        "sampler": sampler,
        "base_respacing": steps,
        "upsample": bool(upsample),
        "upsample_respacing": str(upsample_steps),
        "upsample_temp": upsample_temp,
        "filmstrip_frames": FILMSTRIP_FRAMES if filmstrip else 0,
    }


def steps_from_respacing(respacing: Any) -> int | None:
    """The step count a respacing spec gives ("100" -> 100, "ddim50" -> 50, "10,10" -> 20)."""
    text = str(respacing).strip().removeprefix("ddim")
    try:
        return sum(int(part) for part in text.split(","))
    except ValueError:
        return None


def widget_values(recipe: Recipe) -> dict[str, Any]:
    """The widget values (keyed like the handlers' parameters) that reproduce `recipe`."""
    settings = dict(recipe.settings)
    values: dict[str, Any] = {"prompt": recipe.prompt, "seed": recipe.seed, "batch_size": 1}
    if recipe.pipeline == "clip_guided" and "clip_scale" in settings:
        values["guidance_scale"] = settings.pop("clip_scale")
    elif "guidance_scale" in settings:
        values["guidance_scale"] = settings.pop("guidance_scale")
    steps = steps_from_respacing(settings.pop("base_respacing", ""))
    if steps is not None:
        values["steps"] = steps
    if "upsample_respacing" in settings:
        values["upsample_steps"] = str(settings.pop("upsample_respacing"))
    for key in ("sampler", "upsample", "upsample_temp", "clip_source", "mask_grow",
                "mask_feather"):
        if key in settings:
            values[key] = settings[key]
    return values
