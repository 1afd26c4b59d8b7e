"""Serve the web app: the page, the HTTP API and the queue (`glide-ui serve`, `python app.py`).

The flags are parsed by `glide_ui.cli` (one parser for both entry points); this module turns
them into a launched Gradio app.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MAX_UPLOAD = "25mb"


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


def checked_saving(args: argparse.Namespace, auth: list | None):
    """The saving policy of the flags, its outputs folder made and checked writable when
    saving is on; a folder that is not is refused in one line, exit status 2 (a bad flag),
    before the slow imports and any model."""
    from glide_ui.files import FolderError
    from glide_ui.history import saving_policy, writable_outputs

    saving = saving_policy(args.outputs, args.save, args.share, bool(auth))
    if saving.enabled:
        try:
            writable_outputs(args.outputs)
        except FolderError as error:
            print(f"glide-ui: {error} Choose another folder with --outputs, or run with "
                  "--no-save.", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
    return saving


def build(args: argparse.Namespace):
    """The Blocks app and the keyword arguments for its `launch()`."""
    auth = read_auth(args.auth)
    saving = checked_saving(args, auth)

    import gradio as gr

    from glide_ui.errors import GlideUIError
    from glide_ui.history import History
    from glide_ui.models import ModelManager
    from glide_ui.training.policy import runs_dir, training_policy
    from glide_ui.ui import Backend, build_demo
    from glide_ui.ui.backend import ASSETS_DIR
    from glide_ui.ui.style import CSS, theme

    finetunes = getattr(args, "finetune", None)
    if finetunes and getattr(args, "ray", False):
        raise SystemExit("glide-ui: --finetune does not reach Ray Serve replicas yet; serve "
                         "without --ray to use a fine-tune.")
    try:
        manager = ModelManager(model_set=args.models, device=args.device, dtype=args.dtype,
                               max_memory=args.max_memory, checkpoints_dir=args.checkpoints,
                               finetunes=finetunes)
    except (GlideUIError, ValueError, RuntimeError) as error:
        raise SystemExit(f"glide-ui: {error}") from None
    training = training_policy(args.share, bool(auth), getattr(args, "allow_training", False))
    if training.message:
        logging.getLogger("glide_ui").info("%s", training.message.replace("`", ""))
    warn_if_public(args.share, auth)
    try:
        history = History.open(saving.folder) if saving.enabled else None
    except (OSError, sqlite3.Error) as error:
        raise SystemExit(f"glide-ui: cannot keep results in {saving.folder}: {error}. Choose "
                         "another folder with --outputs, or run with --no-save.") from None
    runner = start_replicas(args) if getattr(args, "ray", False) else None
    backend = Backend(manager, history=history, saving=saving, runner=runner,
                      training=training, runs=runs_dir(getattr(args, "runs", None)))
    demo = build_demo(backend)
    with demo:  # read-only, outside the queue: answers while a request runs
        gr.api(backend.models_status, api_name="models_status", queue=False)
    demo.queue(default_concurrency_limit=backend.slots, max_size=max(1, args.queue_size))
    launch = dict(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                  max_file_size=MAX_UPLOAD, allowed_paths=[str(ASSETS_DIR)], theme=theme(),
                  css=CSS, show_error=False, footer_links=["api"])
    return demo, launch


def start_replicas(args: argparse.Namespace):
    """Deploy the pipelines on Ray Serve replicas (`--ray`); their runner."""
    try:
        from glide_ui.replicas import ReplicaSettings, start
    except ImportError as error:
        raise SystemExit(f"glide-ui: --ray needs Ray Serve ({error}). Install it with "
                         "pip install 'glide-ui[serve]' (or -r requirements-serve.txt).") from None
    import torch

    if args.replicas < 1:
        raise SystemExit("glide-ui: --replicas needs 1 or more.")
    gpus = args.replica_gpus
    if gpus is None:
        gpus = 1.0 if torch.cuda.is_available() and args.device in (None, "cuda") else 0.0
    settings = ReplicaSettings(replicas=args.replicas, gpus=gpus, models=args.models,
                               device=args.device, dtype=args.dtype, max_memory=args.max_memory,
                               checkpoints=args.checkpoints)
    started = time.monotonic()
    runner = start(settings, args.ray_address)
    logging.getLogger("glide_ui").info("%d replica(s) of the pipelines ready in %.1f s",
                                       args.replicas, time.monotonic() - started)
    return runner


def serve(args: argparse.Namespace) -> None:
    """Build the app from parsed flags and serve it until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo, launch = build(args)
    demo.launch(**launch)
