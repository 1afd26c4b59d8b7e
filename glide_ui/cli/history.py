"""`glide-ui history`: the outputs folder's index rebuilt, synced or searched (the same
code as `python -m glide_ui.history`)."""

from __future__ import annotations

from glide_ui.cli.arguments import Commands
from glide_ui.history.__main__ import add_arguments, run


def add(commands: Commands) -> None:
    add_arguments(commands.add("history", run, "The outputs folder's index: rebuild it from "
                               "the PNGs (--rebuild), take in changes made by hand (--sync), "
                               "search it (--search WORDS); see --outputs.", models=False))
