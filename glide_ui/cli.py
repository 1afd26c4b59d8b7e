"""The `glide-ui` command: serve the app, generate, inpaint, read and rerun recipes, fetch
weights.

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
    glide-ui models [--json]

Pictures are written as PNGs carrying their recipe to --out (default ./outputs) and their
paths printed, one per line. Messages go to stderr; an error is one line there and a
non-zero exit status (2 for bad arguments, 1 for anything else), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from glide_ui import __version__
from glide_ui.settings import CALL_SETTINGS, FAST_PRESET, JOBS, SETTINGS, Setting, settings_of

DEFAULT_OUT = "outputs"
PROG = "glide-ui"

# What each command needs, for `download GROUP` and the "used by" of `models`.
GROUPS = {**{job.command: job.models for job in JOBS.values()}, "rank": ("ViT-B/32",)}
APP_MODELS = tuple(dict.fromkeys(name for names in GROUPS.values() for name in names))
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 141


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (and where to find help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------- arguments


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


def _add_job_arguments(parser: argparse.ArgumentParser, job: str) -> None:
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
        parser.add_argument("--preset", choices=["fast"], default=None,
                            help="fast: " + ", ".join(f"{SETTINGS[name].cli_flag} {value}"
                                                      for name, value in FAST_PRESET.items())
                                 + " (flags given as well win)")
    _add_output_arguments(parser)
    _add_finetune_argument(parser)


def _add_finetune_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune", action="append", metavar="FILE[:SCALE]",
                        help="use a fine-tune made by `glide-ui train` (LoRA scale, default "
                             "1; 0 gives the base model's pixels); repeatable, one per model")


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


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the PNGs (default ./{DEFAULT_OUT})")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress lines on stderr (warnings still)")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="OpenAI's GLIDE: the web app, text to image, "
                    "CLIP guidance, inpainting, outpainting, sketch edits and variations from "
                    "the command line.")
    parser.add_argument("--version", action="version", version=f"glide-ui {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an unexpected error, show where it happened")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str,
                models: bool | None = True) -> argparse.ArgumentParser:
        """A subcommand; models: its model flags (None: which models, not where)."""
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        if models is not False:
            add_model_arguments(sub, place=bool(models))
        return sub

    serve = command("serve", _serve, "Serve the web app (the page and its HTTP API).")
    add_serve_arguments(serve)

    def job_command(job: str, handler: Callable[[argparse.Namespace], int],
                    text: str) -> argparse.ArgumentParser:
        return command(JOBS[job].command, handler, text)

    def finish(sub: argparse.ArgumentParser, job: str) -> None:
        _add_job_arguments(sub, job)
        if job in ("text2im", "clip_guided"):
            prompt = sub.add_mutually_exclusive_group(required=True)
            prompt.add_argument("prompt", nargs="?", help="the prompt (or give --prompts)")
            prompt.add_argument("--prompts", metavar="FILE", type=argparse.FileType(
                encoding="utf-8"), help="one prompt per line, each run in turn ('-': stdin)")
            sub.add_argument("--rank", action="store_true",
                             help="order the images best first by OpenAI CLIP")
            sub.add_argument("--keep", type=int, metavar="K",
                             help="with --rank: keep only each prompt's best K images")

    generate = job_command("text2im", _generate, "Text to image: the base model with "
                           "classifier-free guidance, then the upsampler.")
    finish(generate, "text2im")

    clip = job_command("clip_guided", _clip, "CLIP-guided generation (GLIDE's noise-aware "
                       "CLIP or OpenAI's CLIP).")
    finish(clip, "clip_guided")

    inpaint = job_command("inpaint", _inpaint, "Repaint the masked part of a picture to "
                          "match the prompt.")
    inpaint.add_argument("image", type=existing_file, help="the picture (any size)")
    inpaint.add_argument("mask", type=mask_file_or_shape,
                         help="the same size; white (non-black) or opaque pixels are repainted; "
                              "or shapes: 'rect:x0,y0,x1,y1', 'ellipse:x0,y0,x1,y1' (pixels, "
                              "several joined by ';')")
    inpaint.add_argument("prompt", nargs="?", default="")
    finish(inpaint, "inpaint")

    outpaint = job_command("outpaint", _outpaint, "Extend a picture on its sides, the new "
                           "area made to match the prompt.")
    outpaint.add_argument("image", type=existing_file, help="the picture (any size)")
    outpaint.add_argument("prompt", nargs="?", default="")
    finish(outpaint, "outpaint")

    sketch = job_command("sketch", _sketch, "Repaint where coloured strokes are painted on "
                         "a picture, from the strokes and the prompt (SDEdit).")
    sketch.add_argument("image", type=existing_file, help="the picture (any size)")
    sketch.add_argument("strokes", type=existing_file,
                        help="a transparent PNG of the same size holding the coloured strokes")
    sketch.add_argument("prompt", nargs="?", default="")
    finish(sketch, "sketch")

    variations = job_command("variations", _variations, "New pictures that keep a "
                             "picture's composition (SDEdit with the base model, then the "
                             "upsampler).")
    variations.add_argument("image", type=existing_file, help="the picture (any size)")
    variations.add_argument("prompt", nargs="?", default="")
    finish(variations, "variations")

    upsample = command("upsample", _upsample, "Pick, then upsample: the 256 px upsampler on "
                       "64 px pictures made with `generate --no-upsample` (the same pixels as "
                       "in one go).")
    upsample.add_argument("images", nargs="+", type=existing_file, metavar="IMAGE")
    _add_output_arguments(upsample)

    rank = command("rank", _rank, "Score pictures by OpenAI CLIP similarity to a prompt, "
                   "best first.")
    rank.add_argument("prompt")
    rank.add_argument("images", nargs="+", type=existing_file, metavar="IMAGE")

    info = command("info", _info, "Show the recipe a PNG made by glide-ui carries.",
                   models=False)
    info.add_argument("image", type=existing_file)
    info.add_argument("--json", action="store_true", help="the recipe as JSON")

    rerun = command("rerun", _rerun, "Make a picture again from the recipe it carries "
                    "(on the model set, device and dtype it records, unless given).")
    rerun.add_argument("image", type=existing_file, help="a PNG made by glide-ui")
    rerun.add_argument("--image", dest="source", type=existing_file, metavar="PICTURE",
                       help="the picture of an inpainting, outpainting or variations (of "
                            "a sketch: with its strokes painted on)")
    rerun.add_argument("--mask", type=existing_file,
                       help="an inpainting's mask (a sketch's strokes)")
    _add_output_arguments(rerun)
    _add_finetune_argument(rerun)
    rerun.set_defaults(models=None, device=None, dtype=None)  # the recipe's, unless given

    download = command("download", _download, "Fetch and verify checkpoints ahead of time.",
                       models=None)
    download.add_argument("names", nargs="*", metavar="MODEL",
                          help=f"model names ({', '.join(APP_MODELS)}) or groups "
                               f"({', '.join(GROUPS)}, all); default all")
    download.add_argument("--quiet", "-q", action="store_true",
                          help="no progress lines on stderr")

    history = command("history", _history, "The outputs folder's index: rebuild it from the "
                      "PNGs (--rebuild), take in changes made by hand (--sync), search it "
                      "(--search WORDS); see --outputs.", models=False)
    history.add_argument("history_args", nargs=argparse.REMAINDER, metavar="...",
                         help="--rebuild | --sync | --search WORDS [--outputs DIR] [--user U]")

    train = command("train", _train, "Fine-tune a model on your own captioned pictures "
                    "(LoRA or every weight); writes a fine-tune file that --finetune uses.",
                    models=None)
    from glide_ui import train_cli

    train_cli.add_arguments(train)

    models = command("models", _models, "List the checkpoints: which are here, their "
                     "sizes, which are missing.", models=None)
    models.add_argument("--json", action="store_true")
    return parser


# ----------------------------------------------------------------------------- running


def _train(args: argparse.Namespace) -> int:
    from glide_ui.errors import RequestError
    from glide_ui.train_cli import run as train
    from glide_ui.training.data import DataError

    try:
        return train(args)
    except (DataError, RequestError) as error:  # bad data or settings: before any training
        return _fail(str(error), EXIT_USAGE)


def _history(args: argparse.Namespace) -> int:
    from glide_ui.history.__main__ import main as history_main

    try:
        return history_main(args.history_args)
    except SystemExit as done:  # its own parser's --help or bad argument (already said)
        return done.code if isinstance(done.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["history"]:  # its flags are its own parser's (argparse would take them)
        return _history(argparse.Namespace(history_args=argv[1:]))
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
        return _fail(str(error), EXIT_USAGE)
    try:
        return args.handler(args)
    except GlideUIError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return _fail("stopped.", EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader went away (`glide-ui models | head`): say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:  # a file that cannot be written, a full disk...
        return _fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
    except Exception as error:
        if args.traceback:
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        return _fail(f"unexpected error ({type(error).__name__}: {first}); run with "
                     "--traceback to see where.")


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


def _fail(message: str, status: int = EXIT_ERROR) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _say(args: argparse.Namespace, text: str, warning: bool = False) -> None:
    if warning or not getattr(args, "quiet", False):
        from tqdm.auto import tqdm

        tqdm.write(f"{PROG}: {'warning: ' if warning else ''}{text}", file=sys.stderr)


def _glide(args: argparse.Namespace, **place: Any):
    from glide_ui.api import Glide

    place = {"models": args.models, "device": args.device, "dtype": args.dtype, **place}
    return Glide(place.pop("models"), **place, max_memory=args.max_memory,
                 checkpoints=args.checkpoints, progress=None,
                 finetunes=getattr(args, "finetune", None),
                 on_status=lambda status: _say(args, status.text, status.level == "warning"))


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (the others keep the request's default; a
    preset's values unless given)."""
    values = vars(args)
    settings = {name: values[name] for name in SETTINGS
                if name in values and name not in CALL_SETTINGS}
    if getattr(args, "preset", None) == "fast":
        settings = {**FAST_PRESET, **settings}
    return {**settings, "seed": args.seed, "batch_size": args.batch_size}


def _write(args: argparse.Namespace, output: Any) -> int:
    """Save the images, print their paths (with their label, e.g. a CLIP score)."""
    paths = output.save(args.out)
    for index, path in enumerate(paths):
        label = output.labels[index] if index < len(output.labels) else ""
        print(f"{path}\t{label}" if label else path, flush=True)
    return 0


# ----------------------------------------------------------------------------- commands


def _serve(args: argparse.Namespace) -> int:
    from glide_ui.server import serve

    serve(args)
    return 0


def _generate(args: argparse.Namespace) -> int:
    return _each_prompt(args, "text2im")


def _clip(args: argparse.Namespace) -> int:
    return _each_prompt(args, "clip_guided")


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
    glide = _glide(args)
    for prompt in prompts:
        output = getattr(glide, job)(prompt, rank=args.rank, **_settings(args))
        _write(args, output if args.keep is None else _best(output, args.keep))
    return 0


def _best(output: Any, count: int) -> Any:
    """The first `count` images of a ranked output (best first), with their recipes."""
    from dataclasses import replace

    return replace(output, images=output.images[:count], recipes=output.recipes[:count],
                   labels=output.labels[:count])


def _inpaint(args: argparse.Namespace) -> int:
    settings = _settings(args)
    mask = args.mask
    if isinstance(mask, str):  # shapes instead of a mask file
        settings["mask_shape"] = "; ".join(filter(None, (mask, settings.get("mask_shape"))))
        mask = None
    return _write(args, _glide(args).inpaint(args.image, mask, args.prompt, **settings))


def _outpaint(args: argparse.Namespace) -> int:
    return _write(args, _glide(args).outpaint(args.image, args.prompt, **_settings(args)))


def _sketch(args: argparse.Namespace) -> int:
    return _write(args, _glide(args).sketch(args.image, args.strokes, args.prompt,
                                            **_settings(args)))


def _variations(args: argparse.Namespace) -> int:
    return _write(args, _glide(args).variations(args.image, args.prompt, **_settings(args)))


def _upsample(args: argparse.Namespace) -> int:
    return _write(args, _glide(args).upsample(args.images))


def _rank(args: argparse.Namespace) -> int:
    scores = _glide(args).rank(args.images, args.prompt)
    for score, path in sorted(zip(scores, args.images, strict=True), key=lambda p: -p[0]):
        print(f"{score:.4f}\t{path}")
    return 0


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
    glide = _glide(args, **recipe_place(recipe, args))
    output = glide.rerun(recipe, image=args.source, mask=args.mask)
    _write(args, output)
    _say(args, compare_pixels(args.image, output.images[0]))
    return 0


def recipe_place(recipe: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Model set, device and dtype for a rerun: as given, else as the recipe records them
    (the device where this machine has it; its dtype only on that device)."""
    tiny = bool(recipe.models) and all(str(checkpoint).startswith("tiny-")
                                       for checkpoint in recipe.models.values())
    made_on = str(recipe.settings.get("device") or "") or None
    device = args.device or (made_on if made_on and _available(made_on) else None)
    dtype = args.dtype
    if dtype is None and device is not None and device == made_on:
        dtype = recipe.settings.get("dtype")
    return {"models": args.models or ("tiny" if tiny else "official"), "device": device,
            "dtype": dtype}


def _available(device: str) -> bool:
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return kind == "cpu"


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


def _download_names(names: Sequence[str]) -> list[str]:
    from glide_ui.checkpoints import REGISTRY
    from glide_ui.errors import RequestError

    chosen: list[str] = []
    for name in names or ["all"]:
        if name == "all":
            chosen += APP_MODELS
        elif name in GROUPS:
            chosen += GROUPS[name]
        elif name in REGISTRY:
            chosen.append(name)
        else:
            raise RequestError(f"Unknown model {name!r}: give model names "
                               f"({', '.join(REGISTRY)}) or groups ({', '.join(GROUPS)}, all).")
    return list(dict.fromkeys(chosen))


def _download(args: argparse.Namespace) -> int:
    names = _download_names(args.names)
    if args.models == "tiny":
        print("Tiny models are built in (random weights): nothing to download.")
        return 0
    from glide_ui import checkpoints as ckpt
    from glide_ui.models import ModelManager

    # fp32 on the CPU: the weights stay memory-mapped, so a check costs little memory.
    manager = ModelManager(device="cpu", dtype="fp32", max_memory=2**62,
                           checkpoints_dir=args.checkpoints)
    for name in names:
        spec = ckpt.get_spec(name)
        _say(args, f"{name}: {spec.filename}")
        if spec.sha256 is not None:  # published: the file is checked against its sha256
            path = ckpt.fetch(spec, manager.checkpoints_dir, manager.cache_dir)
            ckpt.verify_local(spec, path)
        else:  # no published hash: the file must load into the model, tensor for tensor
            manager.get(name)
            manager.release(name)
            path = ckpt.locate(spec, manager.checkpoints_dir, manager.cache_dir)
        print(f"{name}\t{path}\t{_size(path.stat().st_size)}", flush=True)
    return 0


def model_rows(checkpoints: str | None, tiny: bool) -> dict[str, Any]:
    """What `glide-ui models` shows, as data."""
    from glide_ui import checkpoints as ckpt

    folder, cache = ckpt.checkpoints_dir(checkpoints), ckpt.cache_dir()
    others = [name for name, spec in ckpt.REGISTRY.items()
              if name not in APP_MODELS and ckpt.locate(spec, folder, cache)]
    rows = []
    for name in (*APP_MODELS, *others):
        spec = ckpt.REGISTRY[name]
        path = None if tiny else ckpt.locate(spec, folder, cache)
        part = cache / f"{spec.filename}.part"
        if tiny:
            status = "built in"
        elif path is not None:
            status = "in checkpoints folder" if path.parent == folder else "cached"
        else:
            status = "partly downloaded" if part.is_file() else "missing"
        rows.append({
            "name": name, "file": spec.filename, "status": status,
            "path": str(path) if path else None,
            "bytes": path.stat().st_size if path else None,
            "downloaded_bytes": part.stat().st_size if status == "partly downloaded" else None,
            "expected_bytes": spec.size or spec.approx_size, "url": spec.url,
            "used_by": [group for group, members in GROUPS.items() if name in members],
        })
    return {"model_set": "tiny" if tiny else "official", "cache_dir": str(cache),
            "checkpoints_dir": str(folder) if folder else None, "models": rows}


def _models(args: argparse.Namespace) -> int:
    data = model_rows(args.checkpoints, args.models == "tiny")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"cache: {data['cache_dir']}   checkpoints folder: {data['checkpoints_dir'] or '-'}")
    for row in data["models"]:
        if row["bytes"] is not None:
            detail = f"{_size(row['bytes'])}  {row['path']}"
        elif row["downloaded_bytes"] is not None:
            detail = f"{_size(row['downloaded_bytes'])} of {_size(row['expected_bytes'])}"
        elif row["status"] == "missing":
            detail = f"about {_size(row['expected_bytes'])} to download"
        else:
            detail = "random weights, no file"
        print(f"{row['name']:<17}{row['status']:<22}{detail}   "
              f"(used by {', '.join(row['used_by']) or '-'})")
    missing = [row["name"] for row in data["models"] if row["status"] in
               ("missing", "partly downloaded")]
    if missing:
        print(f"missing: {' '.join(missing)} (fetch them with: glide-ui download)")
    return 0


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


if __name__ == "__main__":
    run()
