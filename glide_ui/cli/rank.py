"""`glide-ui rank`: pictures scored by OpenAI CLIP similarity to a prompt, best first."""

from __future__ import annotations

import argparse

from glide_ui.cli import common
from glide_ui.cli.arguments import Commands, existing_file


def add(commands: Commands) -> None:
    rank = commands.add("rank", _rank, "Score pictures by OpenAI CLIP similarity to a "
                        "prompt, best first.")
    rank.add_argument("prompt")
    rank.add_argument("images", nargs="+", type=existing_file, metavar="IMAGE")


def _rank(args: argparse.Namespace) -> int:
    scores = common.open_glide(args).rank(args.images, args.prompt)
    for score, path in sorted(zip(scores, args.images, strict=True), key=lambda p: -p[0]):
        print(f"{score:.4f}\t{path}")
    return 0
