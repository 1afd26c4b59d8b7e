"""What you make is kept: result PNGs in an outputs folder, and a searchable index of them.

Below the UI, beside the pipelines: usable from the app, a CLI and Python.

    from glide_ui.history import History
    history = History.open("~/glide-outputs")          # index made or brought up to date
    history.page(None, Query(words="corgi")).entries    # newest first
"""

from glide_ui.history.folder import (
    OUTPUTS_ENV,
    OutputsFolder,
    default_outputs_dir,
    result_png,
    writable_outputs,
)
from glide_ui.history.index import Entry, HistoryError, Page, Query
from glide_ui.history.policy import SavingPolicy, saving_policy
from glide_ui.history.store import History, SyncReport

__all__ = ["OUTPUTS_ENV", "Entry", "History", "HistoryError", "OutputsFolder", "Page", "Query",
           "SavingPolicy", "SyncReport", "default_outputs_dir", "rebuild", "result_png",
           "saving_policy", "writable_outputs"]


def rebuild(outputs: str | None = None) -> SyncReport:
    """Rebuild the index of `outputs` (default: `default_outputs_dir()`) from its PNGs
    (`python -m glide_ui.history --rebuild`; for a `glide-ui history --rebuild`), whatever
    state the index file is in (missing, damaged: moved aside). Raises HistoryError when
    no index file can be written there (a full disk), OSError when the folder cannot be
    read."""
    history = History(outputs or default_outputs_dir())
    try:
        history.require_file()
        return history.rebuild()
    finally:
        history.close()
