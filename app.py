"""glide-ui: serve the GLIDE web app (also the Hugging Face Space entry point).

    python app.py                      # http://127.0.0.1:7860, official weights, loaded lazily
    python app.py --models tiny        # random tiny models: the whole app offline, for tests
    python app.py --outputs ~/glide    # keep results there (default: the per-user data folder)
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MAX_UPLOAD = "25mb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Serve the GLIDE web app.")
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true",
                        help="also open a public gradio.live link (use with --auth)")
    parser.add_argument("--auth", metavar="USER:PASS|FILE",
                        help="require a login: 'user:password', or a file of such lines")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA if present)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"],
                        help="weights dtype (default: fp16 on CUDA; bf16 on a CPU with bf16 in "
                             "hardware, else fp32)")
    parser.add_argument("--checkpoints", metavar="DIR",
                        help="folder holding the checkpoint files (default: GLIDE_CHECKPOINTS)")
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="memory budget for loaded weights, e.g. 6GB (default: share of RAM "
                             "or VRAM)")
    parser.add_argument("--queue-size", type=int, default=20,
                        help="requests that may wait for the worker before 'busy' (default 20)")
    parser.add_argument("--models", choices=["official", "tiny"], default="official",
                        help="'tiny': small random models that make noise, for offline tests")
    parser.add_argument("--outputs", metavar="DIR",
                        help="folder where every result PNG is saved, one sub-folder per day "
                             "(default: GLIDE_OUTPUTS, else 'outputs' in the per-user data "
                             "folder)")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=None,
                        help="save results and keep a History (default: on; off with --share "
                             "and no --auth, and on a Hugging Face Space, unless --save)")
    return parser.parse_args(argv)


def read_auth(value: str | None) -> list[tuple[str, str]] | None:
    """'user:pass', or a file with one 'user:pass' per line (blank lines and # ignored)."""
    if not value:
        return None
    path = Path(value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    pairs = []
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise SystemExit("--auth needs 'user:password' (or a file of such lines).")
        pairs.append((user, password))
    if not pairs:
        raise SystemExit(f"--auth file {value} holds no 'user:password' line.")
    return pairs


def warn_if_public(share: bool, auth: list | None) -> None:
    if share and not auth:
        print("WARNING: --share without --auth makes this app public: anyone with the link "
              "can use your machine. Add --auth user:password.", file=sys.stderr, flush=True)


def build(args: argparse.Namespace):
    """The Blocks app and the keyword arguments for its `launch()`."""
    import gradio as gr

    from glide_ui.errors import GlideUIError
    from glide_ui.history import History, saving_policy
    from glide_ui.models import ModelManager
    from glide_ui.ui import Backend, build_demo
    from glide_ui.ui.backend import ASSETS_DIR
    from glide_ui.ui.style import CSS, theme

    try:
        manager = ModelManager(model_set=args.models, device=args.device, dtype=args.dtype,
                               max_memory=args.max_memory, checkpoints_dir=args.checkpoints)
    except (GlideUIError, ValueError, RuntimeError) as error:
        raise SystemExit(f"glide-ui: {error}") from None
    auth = read_auth(args.auth)
    warn_if_public(args.share, auth)
    saving = saving_policy(args.outputs, args.save, args.share, bool(auth))
    try:
        history = History.open(saving.folder) if saving.enabled else None
    except (OSError, sqlite3.Error) as error:
        raise SystemExit(f"glide-ui: cannot keep results in {saving.folder}: {error}. Choose "
                         "another folder with --outputs, or run with --no-save.") from None
    backend = Backend(manager, history=history, saving=saving)
    demo = build_demo(backend)
    with demo:  # read-only, outside the queue: answers while a request runs
        gr.api(backend.models_status, api_name="models_status", queue=False)
    demo.queue(default_concurrency_limit=1, max_size=max(1, args.queue_size))
    launch = dict(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                  max_file_size=MAX_UPLOAD, allowed_paths=[str(ASSETS_DIR)], theme=theme(),
                  css=CSS, show_error=False, footer_links=["api"])
    return demo, launch


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo, launch = build(parse_args(argv))
    demo.launch(**launch)


if __name__ == "__main__":
    main()
