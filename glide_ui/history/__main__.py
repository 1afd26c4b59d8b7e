"""The history from the command line: `glide-ui history` (whose subcommand adds these
arguments and runs `run`) or, the same code, `python -m glide_ui.history`.

    python -m glide_ui.history --rebuild              # the index anew from the PNGs
    python -m glide_ui.history --sync                 # take in PNGs added or deleted by hand
    python -m glide_ui.history --search "corgi" [--user ann] [--tab generate]
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from glide_ui.files import FolderError
from glide_ui.history import (
    History,
    HistoryError,
    Query,
    default_outputs_dir,
    rebuild,
    writable_outputs,
)
from glide_ui.history.folder import TABS


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m glide_ui.history",
                                     description="The outputs folder's index of pictures.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The history's flags (an action, the outputs folder, a search's filters)."""
    parser.add_argument("--outputs", metavar="DIR",
                        help=f"the outputs folder (default: {default_outputs_dir()})")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--rebuild", action="store_true",
                        help="make the index anew from the PNGs' recipes")
    action.add_argument("--sync", action="store_true",
                        help="index new PNGs and drop the rows of deleted ones")
    action.add_argument("--search", metavar="WORDS",
                        help="list pictures whose prompt has these words ('' = all), newest "
                             "first")
    parser.add_argument("--user", default="", help="whose pictures to list (with --auth)")
    parser.add_argument("--tab", default="", choices=["", *dict.fromkeys(TABS.values())])
    parser.add_argument("--limit", type=int, default=50)


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Do the action `args` asks for; the exit status (errors said on stderr, one line)."""
    try:
        folder = writable_outputs(args.outputs)  # each action writes the index
    except FolderError as error:
        print(f"glide-ui history: {error}", file=sys.stderr)
        return 2
    try:
        with _warnings_said():
            _run(args, folder)
    except (OSError, sqlite3.Error, HistoryError) as error:
        print(f"glide-ui history: {folder}: {error}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace, folder: str) -> None:
    if args.rebuild:
        report = rebuild(folder)
        print(f"{report.added} picture(s) indexed in {folder}; {report.skipped} PNG(s) "
              "without a recipe left out.")
        return
    history = History.open(folder)
    try:
        if args.sync:
            history.require_file()
            report = history.sync()
            print(f"{report.added} picture(s) indexed, {report.removed} dropped.")
            return
        page = history.page(args.user, Query(args.search, args.tab), 1, args.limit)
        for entry in page.entries:
            print(f"{entry.id}\t{entry.created_at():%Y-%m-%d %H:%M}\t{entry.tab}\t"
                  f"{entry.seed}\t{entry.file}\t{entry.prompt}")
        print(f"{len(page.entries)} of {page.total} picture(s).", file=sys.stderr)
    finally:
        history.close()


@contextmanager
def _warnings_said() -> Iterator[None]:
    """What the history logs as a warning meanwhile (a damaged index moved aside, an index
    kept in memory) is said on stderr, a line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("glide-ui history: %(message)s"))
    logger = logging.getLogger("glide_ui.history")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
