"""Whether results are saved, and what the page says about it (the privacy rules)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from glide_ui.history.folder import outputs_dir

SPACE_ENV = "SPACE_ID"  # set on every Hugging Face Space


@dataclass(frozen=True)
class SavingPolicy:
    """`enabled`: results are written to `folder` and the History tab lists them;
    `notice`: one line (Markdown) for the page saying where results go, or why not."""

    enabled: bool
    folder: Path
    notice: str


def saving_policy(outputs: str | Path | None = None, save: bool | None = None,
                  share: bool = False, auth: bool = False,
                  environ: Mapping[str, str] = os.environ) -> SavingPolicy:
    """The rules: saving is on by default, into `outputs` (default: `default_outputs_dir`).
    `save=False` (--no-save) turns it off. An app anyone can reach without a login
    (`share` without `auth`) and any Hugging Face Space (SPACE_ID set) save nothing
    unless `save=True` (--save) says so explicitly. With `auth` every user has a history
    of their own."""
    folder = outputs_dir(outputs)
    on_space = bool(environ.get(SPACE_ENV))
    if save is False:
        return SavingPolicy(False, folder, "Saving is off (`--no-save`): nothing is kept "
                                           "after the page is closed; download what you want "
                                           "to keep.")
    if save is None and (on_space or (share and not auth)):
        where = "on a Hugging Face Space" if on_space else \
            "in an app shared with `--share` and no `--auth`"
        return SavingPolicy(False, folder, f"Saving is off {where}: nothing made here is kept "
                                           "on the server and nobody can see anyone else's "
                                           "pictures. Download what you want to keep (the "
                                           "owner can turn saving on with `--save`).")
    if not auth and (share or on_space):
        return SavingPolicy(True, folder, "⚠️ Saving is on (`--save`) in a public app without "
                                          "a login: everyone who opens it sees one shared "
                                          "history.")
    whose = " Each user sees only their own pictures." if auth else ""
    return SavingPolicy(True, folder, f"Every result is saved in `{folder}` (one folder per "
                                      f"day) and listed in History.{whose}")
