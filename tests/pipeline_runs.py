"""Shared by the pipeline tests: draining a run (the `manager` fixture is in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterable

from glide_ui.pipelines.events import Event, Result


def run(events: Iterable[Event]) -> tuple[list[Event], Result]:
    """Every event of a run, and its one Result (which must come last)."""
    events = list(events)
    results = [e for e in events if isinstance(e, Result)]
    assert len(results) == 1 and events[-1] is results[0]
    return events, results[0]
