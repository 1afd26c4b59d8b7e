"""Stages the pipelines share: seeds, notices, text conditioning, one diffusion stage with
throttled previews, the upsampler, and recipes.

Stages are generators of events that `return` their result, so a pipeline reads
`x = yield from stage(...)`. Nothing here keeps state between requests: every random
draw comes from generators created for the request (see `image_generators`), so a run
that follows a cancelled one is bit-identical to a run in a fresh process.

Grad mode is never switched around a `yield` (it is thread-local and would leak into the
consumer); the samplers set it per step and text encodings are computed under no_grad.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from glide_ui.glide import samplers
from glide_ui.glide.diffusion import create_diffusion, strength_steps
from glide_ui.glide.guidance import DenoisedFn, ModelFn, conditional_model_fn
from glide_ui.glide.text import TextCondition
from glide_ui.glide.tokenizer import get_glide_tokenizer
from glide_ui.images import quantize, tensor_to_pil
from glide_ui.pipelines import solvers
from glide_ui.pipelines.events import Event, Frame, Preview, Progress, Status
from glide_ui.pipelines.requests import MAX_SEED, Request, validate
from glide_ui.recipe import Recipe
from glide_ui.settings import SETTINGS

UPSAMPLE_SEED_OFFSET = 2**31
"""The upsampler's noise for image seed s comes from a generator seeded with s + 2**31:
above MAX_SEED and below 2**32 (torch's CPU generators use only a seed's low 32 bits), so
it never equals any image's base noise stream."""


StageEvents = Generator[Event, None, torch.Tensor]


# --- seeds ------------------------------------------------------------------------------------


def resolve_seed(seed: int, batch_size: int) -> int:
    """`seed`, or for -1 a fresh one from the OS's randomness (never torch's global RNG),
    small enough that seed + batch_size - 1 <= MAX_SEED."""
    if seed != -1:
        return seed
    return secrets.randbelow(MAX_SEED - batch_size + 2)


def begin(request: Request) -> Generator[Event, None, tuple[Any, list[int]]]:
    """Check `request` (its notices become events), then give the checked request and its
    images' seeds. Raises RequestError before any work for a bad request."""
    request, notices = validate(request)
    yield from notices
    seed = resolve_seed(request.seed, request.batch_size)
    return request, image_seeds(seed, request.batch_size)


def image_seeds(seed: int, batch_size: int) -> list[int]:
    """Image i of a batch uses seed + i, so it can be reproduced alone."""
    return [seed + i for i in range(batch_size)]


def image_generators(seeds: Sequence[int], offset: int = 0) -> list[torch.Generator]:
    """One fresh CPU generator per image, seeded with its seed + `offset`."""
    return [torch.Generator().manual_seed(seed + offset) for seed in seeds]


# --- notices ----------------------------------------------------------------------------------


def loading_notices(manager: Any, names: Sequence[str]) -> Iterator[Status]:
    """A status line for every model that has to be loaded before the run."""
    for name in names:
        if not manager.is_loaded(name):
            yield Status(f"Loading {name}...")


def prompt_notices(prompt: str, manager: Any, names: Sequence[str]) -> Iterator[Status]:
    """A warning when the prompt is longer than a model's text context (once)."""
    tokenizer = get_glide_tokenizer()
    tokens = tokenizer.encode(prompt)
    contexts = [manager.options(name)["text_ctx"] for name in names
                if "text_ctx" in manager.options(name)]
    if contexts and len(tokens) > min(contexts):
        yield Status(f"The prompt is {len(tokens)} tokens long; the model reads only the "
                     f"first {min(contexts)}, the rest is ignored.", "warning")


# --- text -------------------------------------------------------------------------------------


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def text_condition(model: nn.Module, prompt: str, guided: bool,
                   negative_prompt: str = "") -> TextCondition:
    """The model's text conditioning of one image, computed once per request: the prompt's
    row, then when `guided` (classifier-free guidance) the unconditional row, which is the
    empty caption's or, given one, the negative prompt's (as A1111 and diffusers do)."""
    tokenizer = get_glide_tokenizer()
    text_ctx = model.options["text_ctx"]
    rows = [tokenizer.tokenize(prompt, text_ctx)]
    if guided:
        rows.append(tokenizer.tokenize(negative_prompt, text_ctx))
    device = device_of(model)
    tokens = torch.tensor([row.tokens for row in rows], dtype=torch.long, device=device)
    mask = torch.tensor([row.mask for row in rows], dtype=torch.bool, device=device)
    with torch.no_grad():
        return model.encode_text(tokens, mask)


# --- batch invariance --------------------------------------------------------------------------


def per_image(model_fns: Sequence[ModelFn]) -> ModelFn:
    """A model function over B images that calls `model_fns[i]` on image i alone.

    Kernels choose their blocking (and so their summation order) by the batch shape, so a
    batched call gives an image slightly different numbers than a call of its own, which
    sampling amplifies into visibly different pixels. One image per call makes image i of
    a batch bit-identical to the same seed run alone, at some cost in throughput.
    """
    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if len(x_t) != len(model_fns):
            raise ValueError(f"{len(x_t)} images for {len(model_fns)} model functions")
        return torch.cat([fn(x_t[i:i + 1], t[i:i + 1]) for i, fn in enumerate(model_fns)])

    return model_fn


def batches_images(request: Request, manager: Any) -> bool:
    """Whether `request`'s images go through each model in one call per step: where the
    manager's compute path batches (`ComputePath.batch_images`, CUDA) and the request does
    not say otherwise (`batch_images=False`, `--no-batch`)."""
    path = getattr(manager, "path", None)
    return bool(path is not None and path.batch_images and getattr(request, "batch_images", True))


def image_model_fn(make: Callable[..., ModelFn], rows: Sequence[dict[str, Any]],
                   batched: bool, halves: int = 1) -> ModelFn:
    """A model function over len(rows) images, image i's model inputs being `rows[i]`.

    Each row holds `halves` rows of one image per input (2: classifier-free guidance's
    [cond, uncond], else 1). By default `make(**rows[i])` runs on image i alone (see
    `per_image`); `batched`: one call of `make` on every image's inputs, stacked
    halves-major as guidance lays out its rows ([cond of each image..., uncond of each
    image...]). The noise is the same either way (the samplers draw image i's from its
    own generator); only the kernels' batch-dependent rounding differs.
    """
    if not batched or len(rows) == 1:
        return per_image([make(**row) for row in rows])
    return make(**{key: stack_rows([row[key] for row in rows], halves) for key in rows[0]})


def stack_rows(values: Sequence[Any], halves: int) -> Any:
    """One batch's input from each image's (tensors [halves, ...], or dataclasses of them
    such as TextCondition): [half 0 of every image..., half 1 of every image...]."""
    if values[0] is None:
        return None
    if dataclasses.is_dataclass(values[0]):
        return type(values[0])(**{field.name: stack_rows([getattr(v, field.name)
                                                          for v in values], halves)
                                  for field in dataclasses.fields(values[0])})
    parts = [value.chunk(halves) for value in values]
    return torch.cat([part[half] for half in range(halves) for part in parts])


def per_image_cond(cond_fn: Any) -> Any:
    """`cond_fn` evaluated one image at a time (see `per_image`); for condition functions
    that do not need the x0 graph."""
    def each(x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor) -> torch.Tensor:
        return torch.cat([cond_fn(x_t[i:i + 1], t[i:i + 1], pred_xstart[i:i + 1])
                          for i in range(len(x_t))])

    return each


# --- one diffusion stage ------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start a stage part-way from `x0` (SDEdit): noised to the step `strength` picks.
    strength 1 is the ordinary run from pure noise, 0 returns x0 without a step."""

    x0: torch.Tensor  # [1 or B, 3, H, W] in [-1, 1], on the model's device
    strength: float


@dataclass(frozen=True)
class PreviewSettings:
    interval: float = 0.5  # seconds; 0 = every step. The first and last step always show.
    noisy: bool = False  # also show x_t
    frames: int = 0  # filmstrip frames kept per stage (evenly spaced steps); 0 = none


def diffuse(stage: str, model: nn.Module, model_fn: ModelFn, generators: list[torch.Generator],
            respacing: str, sampler: str, preview: PreviewSettings, *,
            temperature: float = 1.0, denoised_fn: DenoisedFn | None = None,
            cond_fn: Any = None, size: int | None = None,
            start: Start | None = None) -> StageEvents:
    """Sample len(generators) images with `model_fn` from noise * `temperature` (or from
    `start`: see `Start`); yields Progress every step and throttled Previews, returns the
    final x [B, 3, H, W]."""
    options = model.options
    diffusion = create_diffusion(options["diffusion_steps"], options["noise_schedule"],
                                 respacing)
    size = size or options["image_size"]
    noise = samplers.initial_noise((len(generators), 3, size, size), generators,
                                   device_of(model)) * temperature
    x0, strength = (None, 1.0) if start is None else (start.x0, start.strength)
    if strength_steps(strength, diffusion.num_timesteps) == 0:
        return x0.expand_as(noise).clone()  # no step: the input is the result
    if sampler in solvers.SOLVERS:
        if cond_fn is not None:
            raise ValueError(f"the {sampler} solver cannot take a condition function")
        # A solver chooses its own timesteps: the respacing gives only their number.
        steps = solvers.solve(sampler, options["noise_schedule"], model_fn, noise,
                              diffusion.num_timesteps, generators, denoised_fn=denoised_fn,
                              diffusion_steps=options["diffusion_steps"], x0=x0,
                              strength=strength)
    else:
        run = samplers.ddim if sampler == "ddim" else samplers.ancestral
        x_t, count = (noise, None) if x0 is None else \
            samplers.sdedit_start(diffusion, noise, x0, strength)
        steps = run(diffusion, model_fn, x_t, generators, denoised_fn=denoised_fn,
                    cond_fn=cond_fn, steps=count)
    return (yield from follow(stage, steps, preview))


def follow(stage: str, steps: Iterator[samplers.SamplerStep], preview: PreviewSettings,
           clock: Any = time.monotonic) -> StageEvents:
    """Pass a sampler's steps on as events; returns its final sample.

    Previews (converted to PIL only when shown) come at the first and last step and
    otherwise at most every `preview.interval` seconds. Closing the consumer closes the
    sampler at once (within the step under way).
    """
    last_shown = None
    x = None
    kept: set[int] = set()
    with closing(steps):
        for step in steps:
            x = step.x_t
            yield Progress(stage, step.step + 1, step.total)
            if preview.frames and step.step == 0:
                kept = kept_steps(step.total, preview.frames)
            if step.step in kept:
                yield Frame(stage, step.step + 1, step.total, tensor_to_pil(step.pred_x0))
            now = clock()
            edge = step.step == 0 or step.step == step.total - 1
            if edge or last_shown is None or now - last_shown >= preview.interval:
                last_shown = now
                noisy = tensor_to_pil(x.clamp(-1, 1)) if preview.noisy else []
                yield Preview(stage, step.step + 1, step.total, tensor_to_pil(step.pred_x0),
                              noisy)
    if x is None:
        raise RuntimeError("the sampler yielded no step")
    return x


def kept_steps(total: int, frames: int) -> set[int]:
    """`frames` evenly spaced steps of 0..total-1, the first and the last among them (all
    steps when there are fewer): what a filmstrip keeps, whatever the step count."""
    if frames >= total:
        return set(range(total))
    if frames == 1:
        return {total - 1}
    return {round(k * (total - 1) / (frames - 1)) for k in range(frames)}


def upsample(model: nn.Module, prompt: str, low_res: torch.Tensor, seeds: Sequence[int],
             respacing: str, sampler: str, temperature: float, preview: PreviewSettings,
             denoised_fn: DenoisedFn | None = None, start: Start | None = None,
             generators: list[torch.Generator] | None = None,
             image_inputs: Sequence[dict[str, torch.Tensor]] | None = None,
             batched: bool = False, **inputs: torch.Tensor) -> StageEvents:
    """The 64 -> 256 upsampler on `low_res` rounded to 8 bits (as the reference does),
    with its noise from `generators`, by default seeded at seed + UPSAMPLE_SEED_OFFSET.
    `inputs` (e.g. the inpainting image and mask) are one image's, shared by the batch;
    `image_inputs` instead give each image its own; `start` as for `diffuse`; `batched`
    as for `image_model_fn`."""
    text = text_condition(model, prompt, guided=False)
    low_res = quantize(low_res)
    rows = [{"text": text, "low_res": low_res[i:i + 1], **row}
            for i, row in enumerate(image_inputs or [inputs] * len(seeds))]
    model_fn = image_model_fn(partial(conditional_model_fn, model), rows, batched)
    generators = generators or image_generators(seeds, UPSAMPLE_SEED_OFFSET)
    return (yield from diffuse("upsample", model, model_fn, generators, respacing, sampler,
                               preview, temperature=temperature, denoised_fn=denoised_fn,
                               start=start))


# --- recipes ----------------------------------------------------------------------------------


def recipe_settings(request: Request, manager: Any, images: int = 1,
                    **extra: Any) -> dict[str, Any]:
    """Every request setting that shapes the images (as `glide_ui.settings` declares which:
    a setting recorded only when set is left out at its default, so recipes made before it
    existed rerun to the same recipe), plus where it ran (device, dtype, and the kernel
    path, e.g. "cpu, fp32, channels_last, oneDNN-prepacked weights", saying whether the
    `images` of the request went through the models in one call)."""
    job = type(request).job
    settings = {}
    for field in dataclasses.fields(request):
        setting, value = SETTINGS.get(field.name), getattr(request, field.name)
        if setting is None or setting.record == "never" or \
                (setting.record == "set" and value == setting.default_for(job)):
            continue  # an input (the picture, the mask) or a setting that changes no pixel
        settings[field.name] = value
    settings["device"] = str(manager.device)
    settings["dtype"] = str(manager.dtype).removeprefix("torch.")
    path = getattr(manager, "path", None)
    if path is not None:
        settings["compute_path"] = dataclasses.replace(
            path, batch_images=batches_images(request, manager) and images > 1).describe()
    settings.update(extra)
    return settings


def finetune_records(manager: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Model name -> its fine-tune's record (name, sha256, kind, scale), for those using one."""
    record = getattr(manager, "finetune_record", None)
    if record is None:
        return {}
    records = {name: record(name) for name in names}
    return {name: value for name, value in records.items() if value is not None}


def make_recipes(pipeline: str, request: Request, seeds: Sequence[int], manager: Any,
                 names: Sequence[str], **extra: Any) -> list[Recipe]:
    """One recipe per image: the same settings and models, the image's own seed."""
    settings = recipe_settings(request, manager, len(seeds), **extra)
    models = {name: manager.checkpoint_id(name) for name in names}
    finetunes = finetune_records(manager, names)
    if finetunes:
        settings["finetunes"] = finetunes
    return [Recipe(pipeline=pipeline, prompt=request.prompt, seed=seed, settings=settings,
                   models=models) for seed in seeds]
