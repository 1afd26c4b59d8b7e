"""What the commands share: the parser that reports a bad argument on one line, exit
statuses, the model and output flags, and argument types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

DEFAULT_OUT = "outputs"
PROG = "glide-ui"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 141
Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (and where to find help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Commands:
    """The subcommands of `glide-ui`: each command module adds its own."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._subparsers = parser.add_subparsers(dest="command", required=True,
                                                 metavar="COMMAND")

    def add(self, name: str, handler: Handler, text: str,
            models: bool | None = True) -> argparse.ArgumentParser:
        """A subcommand running `handler`; models: its model flags (True: which models and
        where; None: which models, not where; False: none)."""
        sub = self._subparsers.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        if models is not False:
            add_model_arguments(sub, place=bool(models))
        return sub


def add_model_arguments(parser: argparse.ArgumentParser, place: bool = True) -> None:
    """Which models (and with `place`, where and how): shared by `serve` (and app.py) and
    every job."""
    parser.add_argument("--models", choices=["official", "tiny"], default="official",
                        help="'tiny': small random models that make noise, for trying "
                             "things offline (default: official)")
    parser.add_argument("--checkpoints", metavar="DIR",
                        help="folder holding the checkpoint files (default: GLIDE_CHECKPOINTS)")
    if not place:
        return
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA if present)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"],
                        help="weights dtype (default: fp16 on CUDA; bf16 on a CPU with bf16 in "
                             "hardware, else fp32)")
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="memory budget for loaded weights, e.g. 6GB (default: share of RAM "
                             "or VRAM)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--out and --quiet: where a command that makes pictures writes them."""
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the PNGs (default ./{DEFAULT_OUT})")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress lines on stderr (warnings still)")


def add_finetune_argument(parser: argparse.ArgumentParser) -> None:
    """--finetune: a fine-tune made by `glide-ui train`, for the commands that run models."""
    parser.add_argument("--finetune", action="append", metavar="FILE[:SCALE]",
                        help="use a fine-tune made by `glide-ui train` (LoRA scale, default "
                             "1; 0 gives the base model's pixels); repeatable, one per model")


def seeds(text: str) -> int | list[int]:
    """"42" -> 42 (image i of a batch uses 42 + i); "1,5,9" -> one image per seed."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number (or a comma list of them), "
                                         f"not {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give a seed")
    return values[0] if len(values) == 1 and "," not in text else values


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def mask_file_or_shape(text: str) -> Path | str:
    """A mask file, or shapes such as "rect:40,30,200,120" (kept as text)."""
    if text.split(":")[0].strip().lower() in ("rect", "ellipse") and not Path(text).is_file():
        return text
    return existing_file(text)
