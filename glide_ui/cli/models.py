"""`glide-ui download` and `glide-ui models`: the checkpoints fetched ahead of time, and
which are here (the work is `glide_ui.model_files`'; this prints it)."""

from __future__ import annotations

import argparse
import json

from glide_ui.cli import common
from glide_ui.cli.arguments import Commands
from glide_ui.model_files import APP_MODELS, GROUPS


def add(commands: Commands) -> None:
    download = commands.add("download", _download, "Fetch and verify checkpoints ahead of "
                            "time.", models=None)
    download.add_argument("names", nargs="*", metavar="MODEL",
                          help=f"model names ({', '.join(APP_MODELS)}) or groups "
                               f"({', '.join(GROUPS)}, all); default all")
    download.add_argument("--quiet", "-q", action="store_true",
                          help="no progress lines on stderr")


def add_listing(commands: Commands) -> None:
    models = commands.add("models", _models, "List the checkpoints: which are here, their "
                          "sizes, which are missing.", models=None)
    models.add_argument("--json", action="store_true")


def _download(args: argparse.Namespace) -> int:
    from glide_ui import checkpoints as ckpt
    from glide_ui.model_files import download, resolve_names

    names = resolve_names(args.names)
    if args.models == "tiny":
        print("Tiny models are built in (random weights): nothing to download.")
        return 0
    for name in names:
        common.say(args, f"{name}: {ckpt.get_spec(name).filename}")
        path = download(name, args.checkpoints)
        print(f"{name}\t{path}\t{_size(path.stat().st_size)}", flush=True)
    return 0


def _models(args: argparse.Namespace) -> int:
    from glide_ui.model_files import model_status

    data = model_status(args.checkpoints, args.models == "tiny")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"cache: {data['cache_dir']}   checkpoints folder: {data['checkpoints_dir'] or '-'}")
    for row in data["models"]:
        print(f"{row['name']:<17}{row['status']:<22}{_detail(row)}   "
              f"(used by {', '.join(row['used_by']) or '-'})")
    missing = [row["name"] for row in data["models"] if row["status"] in
               ("missing", "partly downloaded")]
    if missing:
        print(f"missing: {' '.join(missing)} (fetch them with: glide-ui download)")
    return 0


def _detail(row: dict) -> str:
    if row["bytes"] is not None:
        return f"{_size(row['bytes'])}  {row['path']}"
    if row["downloaded_bytes"] is not None:
        return f"{_size(row['downloaded_bytes'])} of {_size(row['expected_bytes'])}"
    if row["status"] == "missing":
        return f"about {_size(row['expected_bytes'])} to download"
    return "random weights, no file"


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
