"""The `glide-ui` command: serve the app, generate, inpaint, read and rerun recipes, fetch
weights; a module per command group (`serve`, `jobs`, `rank`, `recipes`, `models`,
`history`), each adding its subcommands.

    glide-ui serve [--models tiny] [--port 7860] ...      # the web app (= python app.py)
    glide-ui generate "an oil painting of a corgi" --seed 42 --batch-size 2
    glide-ui clip "a hedgehog using a calculator" --clip-source openai
    glide-ui inpaint photo.png mask.png "a cat wearing sunglasses"
    glide-ui inpaint photo.png "ellipse:140,90,330,170" "sunglasses" --mask-grow -4
    glide-ui outpaint photo.png "a cat on a sofa" --right 128   (or --aspect 16:9)
    glide-ui sketch photo.png strokes.png "a red kite in the sky" --strength 0.7
    glide-ui variations photo.png "a watercolour of a cat" --strength 0.6
    glide-ui upsample outputs/glide-text2im-a-corgi-42.png   (made with --no-upsample)
    glide-ui rank "a corgi" outputs/*.png
    glide-ui info outputs/glide-text2im-a-corgi-42.png [--json]
    glide-ui rerun outputs/glide-text2im-a-corgi-42.png
    glide-ui download [MODEL or GROUP ...]
    glide-ui history --search corgi
    glide-ui train my-pictures/ --model base --lora-rank 8 --out runs/corgi
    glide-ui models [--json]

Pictures are written as PNGs carrying their recipe to --out (default ./outputs) and their
paths printed, one per line. Messages go to stderr; an error is one line there and a
non-zero exit status (2 for bad arguments, 1 for anything else), never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from glide_ui import __version__
from glide_ui.cli import history, jobs, models, rank, recipes, serve, train
from glide_ui.cli.arguments import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    Commands,
    Parser,
)
from glide_ui.cli.common import fail
from glide_ui.cli.serve import parse_serve_args

__all__ = ["build_parser", "main", "parse_serve_args", "run"]


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="OpenAI's GLIDE: the web app, text to image, "
                    "CLIP guidance, inpainting, outpainting, sketch edits and variations from "
                    "the command line.")
    parser.add_argument("--version", action="version", version=f"glide-ui {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an unexpected error, show where it happened")
    commands = Commands(parser)
    for group in (serve, jobs, rank, recipes, models):
        group.add(commands)
    history.add(commands)
    train.add(commands)
    models.add_listing(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a bad argument (already said)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    from glide_ui.errors import GlideUIError
    from glide_ui.files import FolderError, writable_folder

    try:
        if getattr(args, "out", None) is not None:  # a job: its folder before the work
            writable_folder(args.out, "--out")
    except FolderError as error:
        return fail(str(error), EXIT_USAGE)
    try:
        return args.handler(args)
    except GlideUIError as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("stopped.", EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader went away (`glide-ui models | head`): say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:  # a file that cannot be written, a full disk...
        return fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
    except Exception as error:
        if args.traceback:
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        return fail(f"unexpected error ({type(error).__name__}: {first}); run with "
                    "--traceback to see where.")


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
