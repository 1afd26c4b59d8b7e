"""Shared by the pipeline tests: draining a run (the `manager` fixture is in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterable

from glide_ui.pipelines.events import Event, Filmstrips, Result


def run(events: Iterable[Event]) -> tuple[list[Event], Result]:
    """Every event of a run, and its one Result (which must come last, but for the
    Filmstrips that follow it when frames were kept)."""
    events = list(events)
    results = [e for e in events if isinstance(e, Result)]
    last = events[-2] if isinstance(events[-1], Filmstrips) else events[-1]
    assert len(results) == 1 and last is results[0]
    return events, results[0]
