"""`glide-ui serve` (= `python app.py`): the web app, with one set of flags for both."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from glide_ui.cli.arguments import Commands, Parser, add_finetune_argument, add_model_arguments


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true",
                        help="also open a public gradio.live link (use with --auth)")
    parser.add_argument("--auth", metavar="USER:PASS|FILE",
                        help="require a login: 'user:password', or a file of such lines")
    parser.add_argument("--queue-size", type=int, default=20,
                        help="requests that may wait for the worker before 'busy' (default 20)")
    parser.add_argument("--outputs", metavar="DIR",
                        help="folder where every result PNG is saved, one sub-folder per day "
                             "(default: GLIDE_OUTPUTS, else 'outputs' in the per-user data "
                             "folder)")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=None,
                        help="save results and keep a History (default: on; off with --share "
                             "and no --auth, and on a Hugging Face Space, unless --save)")
    add_finetune_argument(parser)
    training = parser.add_argument_group("training on the page (the Train tab)")
    training.add_argument("--allow-training", action="store_true",
                          help="let a --share link or a Hugging Face Space train (with --auth: "
                               "only logged-in users; off there otherwise)")
    training.add_argument("--runs", metavar="DIR",
                          help="folder of the page's training runs (default: GLIDE_RUNS, else "
                               "'runs' in the per-user data folder)")
    ray = parser.add_argument_group("many users (Ray Serve; needs the 'serve' extra)")
    ray.add_argument("--ray", action="store_true",
                     help="run the models on Ray Serve replicas, as many requests at once as "
                          "replicas; this process serves the page")
    ray.add_argument("--ray-address", metavar="ADDRESS",
                     help="join this Ray cluster ('auto', 'ray://head:10001'; default: start "
                          "one on this machine)")
    ray.add_argument("--replicas", type=int, default=1, metavar="N",
                     help="replicas, each with its own copy of the models (default 1)")
    ray.add_argument("--replica-gpus", type=float, default=None, metavar="G",
                     help="GPUs per replica (default: 1 if this machine has CUDA, else 0)")


def parse_serve_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags of `python app.py`: those of `glide-ui serve`."""
    parser = Parser(prog="app.py", description="Serve the GLIDE web app.")
    add_serve_arguments(parser)
    add_model_arguments(parser)
    return parser.parse_args(argv)


def add(commands: Commands) -> None:
    add_serve_arguments(commands.add("serve", _serve, "Serve the web app (the page and its "
                                                      "HTTP API)."))


def _serve(args: argparse.Namespace) -> int:
    from glide_ui.server import serve

    serve(args)
    return 0
