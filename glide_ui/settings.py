"""THE declaration of every job's name and of every setting: pure data, no torch, no gradio.

Every front derives from it: the request dataclasses and their validation messages
(`pipelines.requests`), the `Glide` keywords, the command line's flags, the page's
restore, the History filter and `glide-ui download GROUP`. Adding a setting is one entry
in SETTINGS plus the pipeline code that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()
"""The default of a field the caller must give (a text-to-image prompt, a picture)."""

REFERENCE_SAMPLERS = ("ancestral", "ddim")
SOLVER_NAMES = ("dpmpp_2m", "dpmpp_2m_sde", "unipc", "euler_a", "heun")  # pipelines.solvers
SAMPLERS = (*REFERENCE_SAMPLERS, *SOLVER_NAMES)
CLIP_SOURCES = ("glide", "openai")
# The OpenAI CLIP models clip-anytorch knows (checkpoints.OPENAI_CLIP_NAMES; a test checks).
OPENAI_CLIP_MODELS = ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32",
                      "ViT-B/16", "ViT-L/14", "ViT-L/14@336px")
MAX_BATCH_SIZE = 8
# Image i uses seed + i, so seed + batch_size - 1 must fit too. 31 bits: torch's CPU
# generators keep only the low 32 bits of a seed, and the upsampler's noise uses the
# upper half of that range (see pipelines.common.UPSAMPLE_SEED_OFFSET).
MAX_SEED = 2**31 - 1
MAX_MASK_PIXELS = 256  # mask grow (either way) and feather, in pixels of the input image
MAX_EXTENSION = 2048  # outpainting: pixels added on one side
MAX_FILMSTRIP_FRAMES = 64  # per stage: the memory bound, whatever the step count
UPSCALE_FACTORS = (4, 2)  # upscaling: the scales offered (output side / source side)
MAX_UPSCALE_SIDE = 256  # upscaling: the longest source side (x4 of it: 1024 px)
FAST_PRESET = {"sampler": "dpmpp_2m", "base_respacing": "15",
               "upsample_sampler": "dpmpp_2m", "upsample_respacing": "10"}
"""The one-click Fast settings: DPM-Solver++ 2M, 15 base and 10 upsampler steps (the
README gives the published evidence and the bench figures)."""


# ------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobInfo:
    """A job's names and needs, without its code (see `pipelines.jobs` for that).

    name: canonical, as recipes record it; command: its `glide-ui` subcommand (an alias
    everywhere a job is named); tab: the page's tab that runs it and restores its recipes
    (and its HTTP endpoint), label: that tab's title;
    fields: the request's leading fields in order (pictures, the prompt) with their
    defaults; rerun_inputs: what a recipe holds only as fingerprints; models: what it
    loads (`download GROUP`).
    """

    name: str
    command: str
    tab: str
    label: str
    fields: tuple[tuple[str, Any], ...]
    models: tuple[str, ...]
    rerun_inputs: tuple[str, ...] = ()
    guided: bool = True  # classifier-free guidance (so a negative prompt)
    picture_prompt: bool = False  # an empty prompt is taken from the picture's recipe

    @property
    def aliases(self) -> tuple[str, ...]:
        return (self.command,) if self.command != self.name else ()


_BASE, _INPAINT = ("base", "upsample"), ("base-inpaint", "upsample-inpaint")
JOBS: dict[str, JobInfo] = {job.name: job for job in (
    JobInfo("text2im", "generate", "generate", "Generate", (("prompt", REQUIRED),),
            _BASE),
    JobInfo("clip_guided", "clip", "clip_guided", "CLIP-guided", (("prompt", REQUIRED),),
            (*_BASE, "clip/image-enc", "clip/text-enc", "ViT-B/32"), guided=False),
    JobInfo("inpaint", "inpaint", "inpaint", "Inpaint",
            (("image", REQUIRED), ("mask", REQUIRED), ("prompt", REQUIRED)), _INPAINT,
            ("image", "mask")),
    JobInfo("outpaint", "outpaint", "outpaint", "Outpaint",
            (("image", REQUIRED), ("prompt", "")), _INPAINT, ("image",)),
    JobInfo("sketch", "sketch", "sketch", "Sketch",
            (("image", REQUIRED), ("strokes", None), ("prompt", ""), ("mask", None)),
            _INPAINT, ("image", "mask")),
    JobInfo("variations", "variations", "variations", "Variations",
            (("image", REQUIRED), ("prompt", REQUIRED)), _BASE, ("image",)),
    JobInfo("upscale", "upscale", "upscale", "Upscale", (("image", REQUIRED), ("prompt", "")),
            ("upsample-inpaint",), ("image",), guided=False, picture_prompt=True),
)}
BASE_JOBS = tuple(name for name, job in JOBS.items() if job.models[0] in (_BASE[0], _INPAINT[0]))
"""The jobs that run a 64 px base model (all but upscaling, which runs the upsampler alone)."""
GUIDED = tuple(name for name, job in JOBS.items() if job.guided)
ALL_JOBS = tuple(JOBS)
REPAINT = ("inpaint", "sketch")
SWEEP_JOBS = ("text2im", "clip_guided", "inpaint")  # what a sweep or comparison runs
TABS = {name: job.tab for name, job in JOBS.items()}
"""The tab that runs each job (and where its recipes are restored)."""


def job_info(name: str) -> JobInfo:
    """The job called `name` or one of its aliases ("generate" is "text2im"); KeyError."""
    for job in JOBS.values():
        if name == job.name or name in job.aliases:
            return job
    raise KeyError(name)


# ------------------------------------------------------------------------------- settings


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity: one per setting
class Setting:
    """One setting, as every front shows and checks it.

    kind: how it is checked: "int" and "float" (within `range`), "choice" (one of
    `choices`), "bool", "text" (stripped), "prompt" (cleaned of control characters),
    "respacing" (a step spec), "seed" (-1 or within MAX_SEED, given the batch size).
    default: one value, or a dict job -> value where jobs differ. label: the name
    messages and widgets use. aliases: other names it has had (HTTP, recipes, CLI).
    flag: its command-line flag (default --name-with-dashes; None: no flag of its own).
    page: the widget (handler parameter) that holds it on the page, None when the page
    has none. record: "always" in recipes, "never" (it does not change the pixels), or
    "set" (only when not the default: recipes made before it existed rerun unchanged).
    since: jobs whose recipes made before it was added lack it (restored as the default).
    sweep: its caption in a sweep's grid ("" = a sweep cannot vary it). page_defaults: the
    page's starting value where it differs from the request's, per job.
    """

    name: str
    kind: str
    default: Any
    label: str
    help: str
    group: str
    jobs: tuple[str, ...]
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    job_choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    flag: str | None = ""
    metavar: str | None = None
    page: str | None = ""
    record: str = "always"
    since: tuple[str, ...] = ()
    sweep: str = ""  # its caption in a sweep's grid; "" = not sweepable
    page_defaults: dict[str, Any] = field(default_factory=dict)  # where the page differs

    def default_for(self, job: str) -> Any:
        return self.default.get(job) if isinstance(self.default, dict) else self.default

    def choices_for(self, job: str) -> tuple[str, ...] | None:
        return self.job_choices.get(job, self.choices)

    @property
    def cli_flag(self) -> str | None:
        return None if self.flag is None else self.flag or "--" + self.name.replace("_", "-")

    @property
    def widget(self) -> str | None:
        return None if self.page is None else self.page or self.name


def _upsampler(name: str, kind: str, default: Any, label: str, help: str,
               jobs: tuple[str, ...] = ALL_JOBS, **more: Any) -> Setting:
    return Setting(name, kind, default, label, help, "upsampling", jobs, **more)


def _sampling(name: str, kind: str, default: Any, label: str, help: str, **more: Any) \
        -> Setting:
    return Setting(name, kind, default, label, help, "sampling", BASE_JOBS, **more)


_SIDES = tuple(
    Setting(side, "int", 0, f"Extension {side} (px)", f"pixels to add on the {side}",
            "outpaint", ("outpaint",), range=(0, MAX_EXTENSION), metavar="PIXELS")
    for side in ("left", "top", "right", "bottom"))
_REFERENCE_ONLY = {"clip_guided": REFERENCE_SAMPLERS}  # CLIP guidance shifts their mean

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("prompt", "prompt", {job: dict(info.fields)["prompt"] for job, info in
                                 JOBS.items()},
            "Prompt", "what the picture should show", "prompt", ALL_JOBS, flag=None,
            record="never"),
    Setting("negative_prompt", "prompt", "", "Negative prompt",
            "what the picture should not show: classifier-free guidance steers away from it "
            "instead of from the empty caption", "prompt", GUIDED,
            flag="--negative", metavar="TEXT", record="set", since=GUIDED),
    Setting("batch_size", "int", 1, "Batch size",
            f"images to make, 1 to {MAX_BATCH_SIZE} (image i of a batch uses seed + i)",
            "batch", ALL_JOBS, range=(1, MAX_BATCH_SIZE), metavar="N", record="never",
            page_defaults={"variations": 4}),  # a few variations to choose from
    Setting("seed", "seed", -1, "Seed",
            "seed (image i of a batch uses seed + i) or a comma list, one image each; -1 or "
            "none: random", "batch", ALL_JOBS, record="never"),
    # Never recorded: a recipe reruns one image, where batched and per-image are one call.
    Setting("batch_images", "bool", True, "Batch the images",
            "where the device gains from it (CUDA), denoise a request's images in one model "
            "call per step (each image's noise still from its own seed; pixels may differ "
            "slightly from the seed alone); --no-batch: one call per image, bit-identical "
            "to each seed alone", "batch", ALL_JOBS, flag="--batch", page=None,
            record="never"),
    Setting("guidance_scale", "float", {"text2im": 3.0, "variations": 3.0, "inpaint": 5.0,
                                        "outpaint": 5.0, "sketch": 5.0},
            "Guidance scale", "classifier-free guidance: 0 unconditional, 1 plain, higher "
            "follows the prompt more closely", "guidance", GUIDED, range=(0.0, 20.0),
            metavar="SCALE", sweep="guidance"),
    Setting("clip_source", "choice", "glide", "CLIP source",
            "glide: the paper's noise-aware CLIP; openai: OpenAI's CLIP on the predicted "
            "image", "clip", ("clip_guided",), choices=CLIP_SOURCES),
    Setting("clip_scale", "float", 3.0, "CLIP guidance scale", "CLIP guidance scale", "clip",
            ("clip_guided",), range=(0.0, 50.0), metavar="SCALE", page="guidance_scale",
            sweep="CLIP scale"),
    Setting("openai_clip_model", "choice", "ViT-B/32", "OpenAI CLIP model",
            "the OpenAI CLIP model with --clip-source openai", "clip", ("clip_guided",),
            choices=OPENAI_CLIP_MODELS, metavar="MODEL"),
    Setting("strength", "float", {"sketch": 0.7, "variations": 0.6}, "Strength",
            "0 keeps the picture, 1 starts from pure noise", "sdedit", ("sketch", "variations"),
            range=(0.0, 1.0), metavar="S"),
    *_SIDES,
    Setting("aspect_ratio", "text", "", "Aspect ratio",
            "extend to this aspect ratio instead, e.g. 16:9 (the short way, half on each "
            "side)", "outpaint", ("outpaint",), flag="--aspect", metavar="W:H"),
    Setting("blend", "int", 8, "Blend band (px)",
            "pixels of the picture next to the new area blended in", "outpaint",
            ("outpaint",), range=(0, 64), metavar="PIXELS"),
    Setting("scale", "int", 4, "Scale",
            f"output side / source side: {' or '.join(map(str, UPSCALE_FACTORS))} (x4 makes "
            f"{MAX_UPSCALE_SIDE * 4} px of {MAX_UPSCALE_SIDE} px)", "upscale", ("upscale",),
            range=(min(UPSCALE_FACTORS), max(UPSCALE_FACTORS)), metavar="N"),
    Setting("overlap", "int", 64, "Window overlap (px)",
            "pixels of the result two neighbouring 256 px windows share: the later one sees "
            "the earlier one's there, and half of them are blended", "upscale", ("upscale",),
            range=(8, 128), metavar="PIXELS"),
    Setting("mask_grow", "int", 0, "Mask grow",
            "pixels added around the mask, negative to shrink it", "masks", REPAINT,
            range=(-MAX_MASK_PIXELS, MAX_MASK_PIXELS), metavar="PIXELS"),
    Setting("mask_feather", "int", 8, "Mask feather",
            "pixels of soft edge when pasting back", "masks", REPAINT,
            range=(0, MAX_MASK_PIXELS), metavar="PIXELS"),
    Setting("mask_invert", "bool", False, "Invert mask",
            "the mask marks what to keep: repaint everything else", "masks", ("inpaint",),
            flag="--invert", since=("inpaint",)),
    Setting("mask_shape", "text", "", "Mask shapes",
            "shapes added to the mask: 'rect:x0,y0,x1,y1', 'ellipse:x0,y0,x1,y1' (pixels, "
            "several joined by ';')", "masks", ("inpaint",), metavar="SHAPES",
            since=("inpaint",)),
    _sampling("base_respacing", "respacing", "100", "Base steps",
              "base model steps: a number, 'ddim50', 'fast27' or '10,10,3'",
              aliases=("steps",), metavar="STEPS"),
    _sampling("sampler", "choice", "ancestral", "Sampler",
              "base sampler: the reference's ancestral and DDIM, or a diffusers solver",
              choices=SAMPLERS, job_choices=_REFERENCE_ONLY),
    _upsampler("upsample", "bool", True, "Upsample",
               "run the 256 px upsampler after the 64 px base", BASE_JOBS),
    _upsampler("upsample_respacing", "respacing", "fast27", "Upsampler steps",
               "upsampler steps", aliases=("upsample_steps",), metavar="STEPS",
               page="upsample_steps"),
    _upsampler("upsample_temp", "float", 0.997, "Upsample temperature",
               "upsampler noise scale (the reference uses 0.997)", range=(0.0, 1.5),
               metavar="T", sweep="temperature"),
    _upsampler("upsample_sampler", "choice",
               {"text2im": "ddim", "clip_guided": "ddim", "variations": "ddim",
                "inpaint": "ancestral", "outpaint": "ancestral", "sketch": "ancestral",
                "upscale": "ancestral"},
               "Upsampler sampler", "upsampler sampler (as the job's reference notebook)",
               choices=SAMPLERS),
    Setting("preview_interval", "float", 0.5, "Preview interval",
            "seconds between previews; the first and last step always show", "previews",
            ALL_JOBS, range=(0.0, 3600.0), flag=None, page=None, record="never"),
    Setting("preview_noisy", "bool", False, "Noisy previews", "previews also show x_t",
            "previews", ALL_JOBS, flag=None, page=None, record="never"),
    Setting("filmstrip_frames", "int", 0, "Filmstrip frames",
            "keep this many evenly spaced previews per stage and write an animated WebP and a "
            "contact sheet of them (0: none)", "previews", ALL_JOBS,
            range=(0, MAX_FILMSTRIP_FRAMES), flag="--filmstrip", metavar="N",
            page="filmstrip", record="never"),
)}
GROUPS = tuple(dict.fromkeys(setting.group for setting in SETTINGS.values()))
CALL_SETTINGS = ("prompt", "seed", "batch_size")
"""Settings every front takes apart from the others (a `Glide` method's own arguments)."""


def settings_of(job: str) -> list[Setting]:
    """The settings `job` has, in declaration order."""
    return [setting for setting in SETTINGS.values() if job in setting.jobs]


def canonical(name: str) -> str:
    """A setting's public name for `name` or one of its aliases (unknown names as given)."""
    for setting in SETTINGS.values():
        if name in setting.aliases:
            return setting.name
    return name


def added_later(job: str) -> dict[str, Any]:
    """Settings a recipe of `job` may lack (made before they existed), with the value it
    was made with: their default."""
    return {s.name: s.default_for(job) for s in SETTINGS.values() if job in s.since}
