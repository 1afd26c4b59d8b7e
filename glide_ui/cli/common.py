"""What the commands that run models share: messages on stderr, the `Glide` they run on,
writing its pictures."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from glide_ui.cli.arguments import EXIT_ERROR, PROG


def fail(message: str, status: int = EXIT_ERROR) -> int:
    """Say `message` as the command's one error line; `status` to exit with."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def say(args: argparse.Namespace, text: str, warning: bool = False) -> None:
    """A progress line (not with --quiet) or a warning on stderr, clear of progress bars."""
    if warning or not getattr(args, "quiet", False):
        from tqdm.auto import tqdm

        tqdm.write(f"{PROG}: {'warning: ' if warning else ''}{text}", file=sys.stderr)


def open_glide(args: argparse.Namespace, **place: Any) -> Any:
    """The `Glide` of the model flags (`place` overrides models, device, dtype)."""
    from glide_ui.api import Glide

    place = {"models": args.models, "device": args.device, "dtype": args.dtype, **place}
    return Glide(place.pop("models"), **place, max_memory=args.max_memory,
                 checkpoints=args.checkpoints, progress=None,
                 finetunes=getattr(args, "finetune", None),
                 on_status=lambda status: say(args, status.text, status.level == "warning"))


def write(args: argparse.Namespace, output: Any) -> int:
    """Save the images, print their paths (with their label, e.g. a CLIP score)."""
    paths = output.save(args.out)
    for index, path in enumerate(paths):
        label = output.labels[index] if index < len(output.labels) else ""
        print(f"{path}\t{label}" if label else path, flush=True)
    return 0
