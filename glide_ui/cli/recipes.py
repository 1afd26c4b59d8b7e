"""`glide-ui info` and `glide-ui rerun`: the recipe a PNG carries, shown or made again."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from glide_ui.cli import common
from glide_ui.cli.arguments import (
    Commands,
    add_finetune_argument,
    add_output_arguments,
    existing_file,
)


def add(commands: Commands) -> None:
    info = commands.add("info", _info, "Show the recipe a PNG made by glide-ui carries.",
                        models=False)
    info.add_argument("image", type=existing_file)
    info.add_argument("--json", action="store_true", help="the recipe as JSON")

    rerun = commands.add("rerun", _rerun, "Make a picture again from the recipe it carries "
                         "(on the model set, device and dtype it records, unless given).")
    rerun.add_argument("image", type=existing_file, help="a PNG made by glide-ui")
    rerun.add_argument("--image", dest="source", type=existing_file, metavar="PICTURE",
                       help="the picture of an inpainting, outpainting or variations (of "
                            "a sketch: with its strokes painted on)")
    rerun.add_argument("--mask", type=existing_file,
                       help="an inpainting's mask (a sketch's strokes)")
    add_output_arguments(rerun)
    add_finetune_argument(rerun)
    rerun.set_defaults(models=None, device=None, dtype=None)  # the recipe's, unless given


def _info(args: argparse.Namespace) -> int:
    from glide_ui.api import recipe_of

    recipe = recipe_of(args.image)
    if args.json:
        print(recipe.to_json())
        return 0
    print(f"prompt: {recipe.prompt}")
    print(f"pipeline: {recipe.pipeline}")
    print(f"seed: {recipe.seed}")
    for key, value in sorted(recipe.settings.items()):
        print(f"{key}: {value}")
    for name, checkpoint in sorted(recipe.models.items()):
        print(f"model {name}: {checkpoint}")
    print(f"version: glide-ui {recipe.version}")
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from glide_ui.api import recipe_of

    recipe = recipe_of(args.image)
    glide = common.open_glide(args, **recipe_place(recipe, args))
    output = glide.rerun(recipe, image=args.source, mask=args.mask)
    common.write(args, output)
    common.say(args, compare_pixels(args.image, output.images[0]))
    return 0


def recipe_place(recipe: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Model set, device and dtype for a rerun: as given, else as the recipe records them
    (the device where this machine has it; its dtype only on that device)."""
    from glide_ui.compute import device_available

    tiny = bool(recipe.models) and all(str(checkpoint).startswith("tiny-")
                                       for checkpoint in recipe.models.values())
    made_on = str(recipe.settings.get("device") or "") or None
    device = args.device or (made_on if made_on and device_available(made_on) else None)
    dtype = args.dtype
    if dtype is None and device is not None and device == made_on:
        dtype = recipe.settings.get("dtype")
    return {"models": args.models or ("tiny" if tiny else "official"), "device": device,
            "dtype": dtype}


def compare_pixels(path: Path, image: Any) -> str:
    """Whether a rerun gave the same pixels as the file it came from."""
    import numpy as np

    from glide_ui.images import load_image

    before, after = np.asarray(load_image(path), dtype=np.int16), np.asarray(image, np.int16)
    if before.shape != after.shape:
        return f"the new picture is {after.shape[1]} x {after.shape[0]}, {path} is " \
               f"{before.shape[1]} x {before.shape[0]}."
    differ = np.abs(before - after).max(axis=-1)
    if not differ.any():
        return f"same pixels as {path}."
    return f"differs from {path}: {int((differ > 0).sum())} of {differ.size} pixels, by up " \
           f"to {int(differ.max())} levels."
