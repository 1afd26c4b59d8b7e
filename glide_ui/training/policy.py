"""Whether the page may train, and where its runs go (no torch: the server reads it first).

Training holds a machine for minutes or hours and writes to its disk, so a page anyone
can reach (a Hugging Face Space, a `--share` link) trains only when its owner says so
(`--allow-training`) and only for the users a login (`--auth`) names; such a page reads
pictures from uploads only, never from the server's own folders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from glide_ui.history.policy import SPACE_ENV

RUNS_ENV = "GLIDE_RUNS"


@dataclass(frozen=True)
class TrainingPolicy:
    """`enabled`: the Train tab trains (and the Models tab may change the fine-tune);
    `message`: one line (Markdown) saying why not, or under which rules;
    `server_paths`: a data folder on the server may be named (else uploads only);
    `needs_login`: a request without a logged-in user is refused."""

    enabled: bool
    message: str
    server_paths: bool = False
    needs_login: bool = False


def training_policy(share: bool = False, auth: bool = False, allow: bool = False,
                    environ: Mapping[str, str] = os.environ) -> TrainingPolicy:
    """The rules: on by default on a page of one's own; on a Space (SPACE_ID set) or a
    `--share` link off unless `allow` (--allow-training) and `auth` (--auth) both hold."""
    on_space = bool(environ.get(SPACE_ENV))
    if not (share or on_space):
        return TrainingPolicy(True, "", server_paths=True)
    where = "on a Hugging Face Space" if on_space else "on a page shared with `--share`"
    if not allow:
        return TrainingPolicy(False, f"Training is off {where}: it would let anyone who "
                                     "opens the page hold this machine for hours and write "
                                     "to its disk. Its owner can turn it on with "
                                     "`--allow-training` (and `--auth`, for the users it "
                                     "names).")
    if not auth:
        return TrainingPolicy(False, f"Training is off {where} without a login: "
                                     "`--allow-training` needs `--auth` too, so that only "
                                     "the users it names can train.")
    return TrainingPolicy(True, "Training is on for logged-in users (`--allow-training`); "
                                "pictures come from uploads only.", needs_login=True)


def runs_dir(runs: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the page's training runs go: `runs` (--runs), else GLIDE_RUNS, else `runs`
    in the per-user data folder (e.g. ~/.local/share/glide-ui/runs)."""
    if runs:
        return Path(runs).expanduser()
    if environ.get(RUNS_ENV):
        return Path(environ[RUNS_ENV]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("glide-ui", appauthor=False) / "runs"
