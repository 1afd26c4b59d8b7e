"""`glide-ui train`: fine-tune a model on captioned pictures (the flags and the run are
`glide_ui.train_cli`'s)."""

from __future__ import annotations

import argparse

from glide_ui.cli.arguments import EXIT_USAGE, Commands
from glide_ui.cli.common import fail


def add(commands: Commands) -> None:
    from glide_ui import train_cli

    train = commands.add("train", _train, "Fine-tune a model on your own captioned pictures "
                         "(LoRA or every weight); writes a fine-tune file that --finetune "
                         "uses.", models=None)
    train_cli.add_arguments(train)


def _train(args: argparse.Namespace) -> int:
    from glide_ui.errors import RequestError
    from glide_ui.train_cli import run
    from glide_ui.training.data import DataError

    try:
        return run(args)
    except (DataError, RequestError) as error:  # bad data or settings: before any training
        return fail(str(error), EXIT_USAGE)
