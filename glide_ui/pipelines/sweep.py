"""Sweeps and comparisons: one prompt and seed (so the same noise) run over several
settings, the results side by side in a labelled grid."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import fields, replace
from typing import Any

from glide_ui.errors import RequestError
from glide_ui.images import make_grid
from glide_ui.pipelines.common import resolve_seed
from glide_ui.pipelines.events import Event, Preview, Progress, Result, Status
from glide_ui.pipelines.jobs import job_of
from glide_ui.pipelines.requests import (
    REQUEST_TYPES,
    ClipGuidedRequest,
    Request,
    Text2ImRequest,
    validate,
)
from glide_ui.settings import SETTINGS, SWEEP_JOBS, settings_of

MAX_SWEEP_VALUES = 8
SWEEPABLE = {REQUEST_TYPES[job]: tuple(s.name for s in settings_of(job) if s.sweep)
             for job in SWEEP_JOBS}


def sweep(request: Request, manager: Any, param: str = "guidance_scale",
          values: Sequence[float] = (1.0, 3.0, 5.0, 7.0)) -> Iterator[Event]:
    """Run `request` once per value of `param`, every run from the same seeds; the Result
    holds all images (value by value), labelled, and a grid with one column per value."""
    allowed = SWEEPABLE.get(type(request), ())
    if param not in allowed:
        raise RequestError(f"Cannot sweep {param!r} here; choose one of {', '.join(allowed)}.")
    if not 1 <= len(values) <= MAX_SWEEP_VALUES:
        raise RequestError(f"Give 1 to {MAX_SWEEP_VALUES} values to sweep, not {len(values)}.")
    if param == "upsample_temp" and not request.upsample:
        raise RequestError("Sweeping the upsample temperature needs the upsampler on.")
    variants = [replace(request, **{param: value}) for value in values]
    for variant in variants:
        validate(variant)  # refuse any bad value before the first run
    seed = resolve_seed(validate(request)[0].seed, request.batch_size)
    runs = [(f"{SETTINGS[param].sweep} {value:g}", replace(variant, seed=seed))
            for value, variant in zip(values, variants, strict=True)]
    return _side_by_side(runs, manager)


def compare_guidance(request: Text2ImRequest, manager: Any, clip_scale: float = 3.0,
                     clip_source: str = "glide",
                     openai_clip_model: str = ClipGuidedRequest.openai_clip_model) \
        -> Iterator[Event]:
    """Classifier-free guidance and CLIP guidance from the same seed, side by side."""
    checked, _ = validate(request)
    shared = {name: getattr(request, name) for name in _names(ClipGuidedRequest)
              if name in _names(Text2ImRequest) and name != "filmstrip_frames"}
    clip_request = ClipGuidedRequest(**{
        **shared, "seed": checked.seed, "clip_source": clip_source, "clip_scale": clip_scale,
        "openai_clip_model": openai_clip_model})
    validate(clip_request)
    seed = resolve_seed(checked.seed, checked.batch_size)
    runs = [("classifier-free guidance", replace(request, seed=seed)),
            (f"CLIP guidance ({clip_source})", replace(clip_request, seed=seed))]
    return _side_by_side(runs, manager)


def _names(kind: type) -> set[str]:
    return {field.name for field in fields(kind)}


def _side_by_side(runs: list[tuple[str, Request]], manager: Any) -> Iterator[Event]:
    """Run each labelled request in turn, passing its progress on under its label; then
    one Result with every image and a grid (a row per seed, a column per run)."""
    streams = [(label, job_of(request).run(request, manager)) for label, request in runs]
    results = yield from in_turn(streams, announce=True)
    labels = [label for (label, _), result in zip(runs, results, strict=True)
              for _ in result.images]
    tiles, captions = [], []
    for row in range(len(results[0].images)):
        for (label, _), result in zip(runs, results, strict=True):
            tiles.append(result.images[row])
            captions.append(f"{label}, seed {result.recipes[row].seed}")
    yield Result(images=[image for result in results for image in result.images],
                 recipes=[recipe for result in results for recipe in result.recipes],
                 labels=labels, grid=make_grid(tiles, cols=len(runs), labels=captions))


def in_turn(streams: Sequence[tuple[str, Iterable[Event]]], announce: bool = False) \
        -> Generator[Event, None, list[Result]]:
    """Pass on the events of each (label, stream) in turn and return their Results.

    Progress and previews go on under their stream's label (when it has one), the same
    notice only once; with `announce`, a status line says which stream starts.
    """
    results: list[Result] = []
    shown: set[str] = set()
    for index, (label, events) in enumerate(streams):
        if announce:
            yield Status(f"{label} ({index + 1}/{len(streams)})")
        for event in events:
            if isinstance(event, Result):
                results.append(event)
            elif isinstance(event, (Progress, Preview)):
                yield replace(event, stage=f"{label} · {event.stage}") if label else event
            elif event.text not in shown:  # the same notice once, not once per run
                shown.add(event.text)
                yield event
    return results
