"""Progress bars for the Python API: one tqdm bar per stage of a run."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

from glide_ui.pipelines import Progress


class StageBars:
    """One tqdm bar per stage of a run, the current one moved to each Progress step.
    show: True always, False never, None only on a terminal."""

    def __init__(self, show: bool | None) -> None:
        self._disable = None if show is None else not show
        self._stage: str | None = None
        self._bar: Any = None

    def show(self, event: Progress) -> None:
        if event.stage != self._stage or event.step < self._bar.n:
            self.close()
            self._stage = event.stage
            self._bar = tqdm(total=event.total, desc=event.stage, unit="step",
                             disable=self._disable, file=sys.stderr)
        self._bar.update(event.step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._stage = self._bar = None

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
