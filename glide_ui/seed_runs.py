"""Seeds of the Python API: which requests make the images of a seed or a list of seeds,
and their events run as one."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Sequence

from glide_ui.errors import RequestError
from glide_ui.pipelines import Event, Result
from glide_ui.pipelines.requests import MAX_BATCH_SIZE
from glide_ui.pipelines.sweep import in_turn

Seeds = int | Sequence[int] | None
"""A seed (image i of a batch uses seed + i), a list of seeds (one image each), or None
(drawn at random)."""


def seed_runs(seed: Seeds, batch_size: int | None) -> list[tuple[int, int]]:
    """(first seed, batch size) of each request that makes the images of `seed`.

    One seed: one request of `batch_size` (default 1) images, seeds seed, seed + 1, ...
    A list: one image per seed, consecutive seeds batched together (up to the largest
    batch); image i of a batch is bit-identical to its seed run alone, so the grouping
    does not change any image. None: a random seed.
    """
    if seed is None or isinstance(seed, (str, bytes, numbers.Number)) \
            or not isinstance(seed, Iterable):
        return [(-1 if seed is None else seed, 1 if batch_size is None else batch_size)]
    seeds = list(seed)
    if not seeds:
        raise RequestError("Give at least one seed (or seed=None for a random one).")
    if batch_size is not None and batch_size != len(seeds):
        raise RequestError(f"batch_size is {batch_size} but {len(seeds)} seeds were given; "
                           "give one or the other.")
    runs: list[tuple[int, int]] = []
    for value in seeds:
        if runs and runs[-1][1] < MAX_BATCH_SIZE and value == runs[-1][0] + runs[-1][1]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


def concatenated(streams: list[Iterator[Event]]) -> Iterator[Event]:
    """The events of several runs of one pipeline, then one Result with all their images."""
    results = yield from in_turn([("", stream) for stream in streams])
    labelled = all(len(r.labels) == len(r.images) for r in results)
    yield Result(images=[image for r in results for image in r.images],
                 recipes=[recipe for r in results for recipe in r.recipes],
                 labels=[label for r in results for label in r.labels] if labelled else [])

