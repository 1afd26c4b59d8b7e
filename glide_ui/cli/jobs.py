"""The job commands (generate, clip, inpaint, outpaint, sketch, variations, upscale,
upsample): each
job's flags are generated from `glide_ui.settings`, its pictures come from `Glide`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from glide_ui.cli import common
from glide_ui.cli.arguments import (
    Commands,
    Handler,
    add_finetune_argument,
    add_output_arguments,
    existing_file,
    mask_file_or_shape,
    seeds,
)
from glide_ui.settings import CALL_SETTINGS, FAST_PRESET, JOBS, SETTINGS, Setting, settings_of

IMAGE_HELP = "the picture (any size)"
PROMPTED = ("text2im", "clip_guided")  # jobs that take --prompts, --rank and --keep
TEXTS = {
    "text2im": "Text to image: the base model with classifier-free guidance, then the "
               "upsampler.",
    "clip_guided": "CLIP-guided generation (GLIDE's noise-aware CLIP or OpenAI's CLIP).",
    "inpaint": "Repaint the masked part of a picture to match the prompt.",
    "outpaint": "Extend a picture on its sides, the new area made to match the prompt.",
    "sketch": "Repaint where coloured strokes are painted on a picture, from the strokes "
              "and the prompt (SDEdit).",
    "variations": "New pictures that keep a picture's composition (SDEdit with the base "
                  "model, then the upsampler).",
    "upscale": "A picture (up to 256 px a side) made 4 or 2 times larger by the inpainting "
               "upsampler in overlapping windows; the prompt defaults to the picture's recipe's.",
}


def add(commands: Commands) -> None:
    for job in JOBS:
        sub = commands.add(JOBS[job].command, _HANDLERS[job], TEXTS[job])
        _INPUTS[job](sub)
        add_job_arguments(sub, job)
        if job in PROMPTED:
            _add_prompt_arguments(sub)
    upsample = commands.add("upsample", _upsample, "Pick, then upsample: the 256 px "
                            "upsampler on 64 px pictures made with `generate --no-upsample` "
                            "(the same pixels as in one go).")
    upsample.add_argument("images", nargs="+", type=existing_file, metavar="IMAGE")
    add_output_arguments(upsample)


def _prompt_only(sub: argparse.ArgumentParser) -> None:
    """The prompt is an argument of its own or --prompts (added with them)."""


def _picture(sub: argparse.ArgumentParser, *extra: tuple[str, dict[str, Any]]) -> None:
    sub.add_argument("image", type=existing_file, help=IMAGE_HELP)
    for name, options in extra:
        sub.add_argument(name, **options)
    sub.add_argument("prompt", nargs="?", default="")


_INPUTS = {
    "text2im": _prompt_only, "clip_guided": _prompt_only,
    "inpaint": lambda sub: _picture(sub, ("mask", dict(
        type=mask_file_or_shape,
        help="the same size; white (non-black) or opaque pixels are repainted; or shapes: "
             "'rect:x0,y0,x1,y1', 'ellipse:x0,y0,x1,y1' (pixels, several joined by ';')"))),
    "outpaint": _picture,
    "sketch": lambda sub: _picture(sub, ("strokes", dict(
        type=existing_file,
        help="a transparent PNG of the same size holding the coloured strokes"))),
    "variations": _picture,
    "upscale": _picture,
}


def _add_prompt_arguments(sub: argparse.ArgumentParser) -> None:
    prompt = sub.add_mutually_exclusive_group(required=True)
    prompt.add_argument("prompt", nargs="?", help="the prompt (or give --prompts)")
    prompt.add_argument("--prompts", metavar="FILE", type=argparse.FileType(encoding="utf-8"),
                        help="one prompt per line, each run in turn ('-': stdin)")
    sub.add_argument("--rank", action="store_true",
                     help="order the images best first by OpenAI CLIP")
    sub.add_argument("--keep", type=int, metavar="K",
                     help="with --rank: keep only each prompt's best K images")


def add_job_arguments(parser: argparse.ArgumentParser, job: str) -> None:
    """Seeds, batch, every setting of `job` as `glide_ui.settings` declares it (its flag,
    type, choices, help and default), output. Settings left out keep the request's default
    (dest = the setting's name)."""
    parser.add_argument("--seed", type=seeds, default=None, help=SETTINGS["seed"].help)
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help=SETTINGS["batch_size"].help)
    for setting in cli_settings(job):
        flags = [setting.cli_flag, *("--" + alias.replace("_", "-")
                                     for alias in setting.aliases)]
        parser.add_argument(*flags, dest=setting.name, default=argparse.SUPPRESS,
                            help=f"{setting.help} (default {_shown(setting, job)})",
                            **_argument_kind(setting, job))
    if FAST_PRESET["sampler"] in SETTINGS["sampler"].choices_for(job):
        preset = fast_preset(job)
        parser.add_argument("--preset", choices=["fast"], default=None,
                            help="fast: " + ", ".join(f"{SETTINGS[name].cli_flag} {value}"
                                                      for name, value in preset.items())
                                 + " (flags given as well win)")
        parser.set_defaults(fast_preset=preset)
    add_output_arguments(parser)
    add_finetune_argument(parser)


def fast_preset(job: str) -> dict[str, str]:
    """The Fast preset's settings that `job` has (upscaling has only the upsampler's)."""
    return {name: value for name, value in FAST_PRESET.items() if job in SETTINGS[name].jobs}


def cli_settings(job: str) -> list[Setting]:
    """The settings of `job` that have a flag of their own (not the prompt, seed, batch)."""
    return [setting for setting in settings_of(job)
            if setting.cli_flag and setting.name not in CALL_SETTINGS]


def _argument_kind(setting: Setting, job: str) -> dict[str, Any]:
    if setting.kind == "bool":
        return {"action": argparse.BooleanOptionalAction}
    if setting.kind == "choice":
        return {"choices": setting.choices_for(job), "metavar": setting.metavar}
    kind = {"int": int, "float": float}.get(setting.kind, str)
    return {"type": kind, "metavar": setting.metavar}


def _shown(setting: Setting, job: str) -> str:
    value = setting.default_for(job)
    return repr(value) if value == "" else f"{value:g}" if isinstance(value, float) \
        else str(value)


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (the others keep the request's default; a
    preset's values unless given)."""
    values = vars(args)
    settings = {name: values[name] for name in SETTINGS
                if name in values and name not in CALL_SETTINGS}
    if getattr(args, "preset", None) == "fast":
        settings = {**args.fast_preset, **settings}
    return {**settings, "seed": args.seed, "batch_size": args.batch_size}


def _each_prompt(args: argparse.Namespace, job: str) -> int:
    """Run `job` for the prompt, or for each line of --prompts; with --keep K, write only
    the best K of each prompt's images by CLIP (N = the batch)."""
    from glide_ui.errors import RequestError

    prompts = [args.prompt] if args.prompts is None else \
        [line.strip() for line in args.prompts if line.strip()]
    if not prompts:
        raise RequestError(f"{args.prompts.name} holds no prompt: write one per line.")
    if args.keep is not None and not (args.rank and args.keep >= 1):
        raise RequestError("--keep K (1 or more) keeps the best K images by CLIP: give "
                           "--rank as well.")
    glide = common.open_glide(args)
    for prompt in prompts:
        output = getattr(glide, job)(prompt, rank=args.rank, **given_settings(args))
        common.write(args, output if args.keep is None else _best(output, args.keep))
    return 0


def _best(output: Any, count: int) -> Any:
    """The first `count` images of a ranked output (best first), with their recipes."""
    return replace(output, images=output.images[:count], recipes=output.recipes[:count],
                   labels=output.labels[:count])


def _inpaint(args: argparse.Namespace) -> int:
    settings = given_settings(args)
    mask = args.mask
    if isinstance(mask, str):  # shapes instead of a mask file
        settings["mask_shape"] = "; ".join(filter(None, (mask, settings.get("mask_shape"))))
        mask = None
    return common.write(args, common.open_glide(args).inpaint(args.image, mask, args.prompt,
                                                              **settings))


def _picture_job(job: str) -> Handler:
    """The handler of a job that takes a picture, the prompt and its settings."""
    def handler(args: argparse.Namespace) -> int:
        method = getattr(common.open_glide(args), job)
        pictures = [args.image, *([args.strokes] if job == "sketch" else [])]
        return common.write(args, method(*pictures, args.prompt, **given_settings(args)))

    return handler


def _upsample(args: argparse.Namespace) -> int:
    return common.write(args, common.open_glide(args).upsample(args.images))


_HANDLERS = {"text2im": lambda args: _each_prompt(args, "text2im"),
             "clip_guided": lambda args: _each_prompt(args, "clip_guided"),
             "inpaint": _inpaint, "outpaint": _picture_job("outpaint"),
             "sketch": _picture_job("sketch"), "variations": _picture_job("variations"),
             "upscale": _picture_job("upscale")}
