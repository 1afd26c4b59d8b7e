"""The Python API: `Glide`, one object that owns the models and runs each job, in the
manner of the diffusers pipelines.

    from glide_ui import Glide

    glide = Glide()                                   # official weights, fetched on first use
    out = glide.text2im("an oil painting of a corgi", seed=42, batch_size=2)
    out.images[0].save("corgi.png")                   # the PNG carries its recipe

Underneath, the pipelines' event generators do the work (the page and the HTTP API run the
same ones), so the same recipe gives the same pixels here as on the page.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from glide_ui.errors import RequestError
from glide_ui.images import ImageSource, load_image
from glide_ui.models import ModelManager
from glide_ui.outputs import GlideOutput, with_recipe
from glide_ui.pipelines import (
    Event,
    Preview,
    Progress,
    Request,
    Result,
    Status,
    rank,
    ranked,
    request_from_recipe,
    sweep,
    validate,
)
from glide_ui.pipelines.events import Filmstrips
from glide_ui.pipelines.jobs import job
from glide_ui.pipelines.rank import DEFAULT_RANKER, check_rank_count
from glide_ui.pipelines.text2im import upsample_picked
from glide_ui.recipe import Recipe
from glide_ui.reruns import place_notes, recipe_of, reproduction_notes
from glide_ui.seed_runs import Seeds, concatenated, seed_runs
from glide_ui.settings import canonical
from glide_ui.stage_bars import StageBars

log = logging.getLogger("glide_ui")

PreviewCallback = Callable[[Preview], Any]
StatusCallback = Callable[[Status], Any]



class Glide:
    """GLIDE's jobs from Python: text to image, CLIP-guided, inpainting, outpainting,
    sketch edits, variations, upscaling, ranking, sweeps.

    models: "official" (OpenAI's checkpoints, fetched on first use) or "tiny" (small random
    models that make noise, for trying things offline). device ("cpu", "cuda", "cuda:1",
    "mps"; default CUDA if present), dtype ("fp32", "fp16", "bf16"; default as the app),
    max_memory (bytes or "6GB"), checkpoints (a folder of checkpoint files, looked at
    first) and cache_dir (where downloads go) are those of `glide_ui.models.ModelManager`;
    or pass a ready `manager`.

    progress: True shows a progress bar per stage (tqdm.auto: a terminal bar, or a widget
    in a notebook), False none, None only on a terminal. on_status receives each `Status`
    line ("Loading base...", warnings); by default info lines go to the progress bar's
    stream (or the log) and warnings to `warnings.warn`.

    Every job raises RequestError (a GlideUIError) for a bad value before any work, with a
    message naming the setting.
    """

    def __init__(self, models: str = "official", *, device: str | None = None,
                 dtype: str | None = None, max_memory: int | str | None = None,
                 checkpoints: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: bool | None = True, on_status: StatusCallback | None = None,
                 manager: ModelManager | None = None, finetunes: Any = None) -> None:
        self.manager = manager or ModelManager(
            model_set=models, device=device, dtype=dtype, max_memory=max_memory,
            checkpoints_dir=checkpoints, cache_dir=cache_dir, finetunes=finetunes)
        self.progress = progress
        self.on_status = on_status or self._show_status

    def __repr__(self) -> str:
        m = self.manager
        return f"Glide(models={m.model_set!r}, device={str(m.device)!r}, " \
               f"dtype={str(m.dtype).removeprefix('torch.')!r})"

    # ------------------------------------------------------------------ jobs

    def text2im(self, prompt: str, *, seed: Seeds = None, batch_size: int | None = None,
                rank: bool = False, callback: PreviewCallback | None = None,
                **settings: Any) -> GlideOutput:
        """Images of `prompt`: the 64 px base model with classifier-free guidance, then the
        256 px upsampler (as the reference text2im notebook).

        settings (the fields of `Text2ImRequest`, declared in `glide_ui.settings`; an old
        name such as steps= works as an alias): negative_prompt="" (guidance steers away
        from it instead of from the empty caption), guidance_scale=3.0,
        base_respacing="100" (steps: a number, "ddim50", "fast27" or "10,10,3"),
        sampler="ancestral" ("ddim", or a solver: "dpmpp_2m", "dpmpp_2m_sde", "unipc",
        "euler_a", "heun"), upsample=True, upsample_respacing="fast27",
        upsample_temp=0.997, upsample_sampler="ddim", preview_interval (seconds),
        preview_noisy, filmstrip_frames=0 (then `filmstrips` of the output).
        rank: order the images best first by OpenAI CLIP similarity (labels give the score).
        callback: called with every `Preview` (stage, step, total, images = the predicted
        x0 as PIL); with a callback, previews come every step unless preview_interval is
        given. Raise an exception in it to stop the run.
        """
        return self._generate("text2im", dict(prompt=prompt, **settings), seed, batch_size,
                              rank, callback)

    __call__ = text2im

    def clip_guided(self, prompt: str, *, seed: Seeds = None, batch_size: int | None = None,
                    rank: bool = False, callback: PreviewCallback | None = None,
                    **settings: Any) -> GlideOutput:
        """Images of `prompt` steered by CLIP (as the reference clip_guided notebook).

        settings (the fields of `ClipGuidedRequest`): clip_source="glide" (the noise-aware
        CLIP of the paper) or "openai" (OpenAI's CLIP on the predicted image),
        clip_scale=3.0, openai_clip_model="ViT-B/32", and the sampling settings of
        `text2im`. Needs clip-anytorch (MissingPackageError says how to install it).
        """
        return self._generate("clip_guided", dict(prompt=prompt, **settings), seed,
                              batch_size, rank, callback)

    def inpaint(self, image: ImageSource, mask: Any, prompt: str = "", *, seed: Seeds = None,
                batch_size: int | None = None, callback: PreviewCallback | None = None,
                **settings: Any) -> GlideOutput:
        """`image` with the region of `mask` repainted to match `prompt`, at the image's
        full size (pixels away from the mask keep their exact values).

        image: a PIL image, a uint8 array (H x W x 3 or 4) or a file. mask: at the image's
        size, True / non-zero / opaque = repaint: a bool or uint8 array (H x W), an "L"
        image, an RGBA image or array (alpha > 0), or a file of one; or None with shapes.
        settings (the fields of `InpaintRequest`): guidance_scale=5.0, mask_grow=0
        (pixels; negative shrinks the mask) and mask_feather=8, mask_invert=False (True:
        the mask marks what to keep), mask_shape="" (shapes added to the mask, e.g.
        "rect:40,30,200,120; ellipse:250,60,330,140": boxes x0,y0,x1,y1 in pixels), and
        the sampling settings of `text2im`.
        """
        values = dict(image=image, mask=mask, prompt=prompt, **settings)
        return self._generate("inpaint", values, seed, batch_size, False, callback)

    def outpaint(self, image: ImageSource, prompt: str = "", *, seed: Seeds = None,
                 batch_size: int | None = None, callback: PreviewCallback | None = None,
                 **settings: Any) -> GlideOutput:
        """`image` extended on its sides, the new area made by the inpainting models to
        match `prompt`; the result is the extended picture at full size.

        settings (the fields of `OutpaintRequest`): left, top, right, bottom (pixels to
        add on each side, up to 2048) or aspect_ratio ("16:9": extended the short way,
        half on each side); blend=8 (pixels of the picture next to the new area that are
        blended in; the rest keep their exact values); the sampling settings of `text2im`.
        Windows of up to 256 px are made one after another (previews under "window k/n").
        """
        values = dict(image=image, prompt=prompt, **settings)
        return self._generate("outpaint", values, seed, batch_size, False, callback)

    def sketch(self, image: ImageSource, strokes: Any = None, prompt: str = "", *,
               strength: float = 0.7, seed: Seeds = None, batch_size: int | None = None,
               callback: PreviewCallback | None = None, **settings: Any) -> GlideOutput:
        """`image` with the region of coloured `strokes` repainted from the strokes and
        `prompt` (text-conditional SDEdit), at the image's full size.

        strokes: an RGBA image, array or file at the image's size, transparent where the
        picture is untouched (or a list of them, painted in order). Or give
        `mask=` (where the strokes are) with an `image` that already shows them.
        strength: 0 returns the picture with its strokes unchanged, 1 ignores the strokes'
        pixels (plain inpainting of their region); 0.5 to 0.8 follows their layout and
        colours. settings: those of `inpaint` (guidance_scale=5.0, mask_grow, mask_feather,
        sampling). Raises RequestError for an empty sketch or a strength outside [0, 1].
        """
        values = dict(image=image, strokes=strokes, prompt=prompt, strength=strength,
                      **settings)
        return self._generate("sketch", values, seed, batch_size, False, callback)

    def variations(self, image: ImageSource, prompt: str = "", *, strength: float = 0.6,
                   seed: Seeds = None, batch_size: int | None = None,
                   callback: PreviewCallback | None = None, **settings: Any) -> GlideOutput:
        """New 256 px pictures that keep `image`'s composition: its centre square at 64 px
        noised to the step `strength` picks, denoised by the base model with `prompt`
        (classifier-free guidance), then the upsampler. strength 0 keeps the 64 px stage
        equal to the picture's own 64 px version; 1 is text to image. settings: those of
        `text2im`. Raises RequestError for a strength outside [0, 1]."""
        values = dict(image=image, prompt=prompt, strength=strength, **settings)
        return self._generate("variations", values, seed, batch_size, False, callback)

    def upscale(self, image: ImageSource, prompt: str = "", *, scale: int = 4,
                seed: Seeds = None, batch_size: int | None = None,
                callback: PreviewCallback | None = None, **settings: Any) -> GlideOutput:
        """`image` (at most 256 px a side; one smaller than a window is first enlarged)
        made `scale` (4 or 2) times larger by the inpainting upsampler in overlapping
        256 px windows, each seeing what its neighbours made (see `pipelines.upscale`).
        An empty prompt takes the prompt of the recipe the picture carries.

        settings (the fields of `UpscaleRequest`): overlap=64 (result pixels neighbouring
        windows share), upsample_respacing, upsample_sampler="ancestral" (the Fast preset:
        "dpmpp_2m" with "10"), upsample_temp=0.997, preview_interval, filmstrip_frames.
        Previews show the whole canvas filling in, under "window k/n". Raises
        RequestError for a larger picture, a scale not offered, or not an image."""
        values = dict(image=image, prompt=prompt, scale=scale, **settings)
        return self._generate("upscale", values, seed, batch_size, False, callback)

    def sweep(self, prompt: str, param: str = "guidance_scale",
              values: Sequence[float] = (1.0, 3.0, 5.0, 7.0), *, pipeline: str = "text2im",
              seed: int | None = None, batch_size: int = 1, image: ImageSource | None = None,
              mask: Any = None, callback: PreviewCallback | None = None,
              **settings: Any) -> GlideOutput:
        """One seed (so the same noise) run once per value of `param` ("guidance_scale",
        "upsample_temp"; "clip_scale" for "clip_guided"); `grid` shows them side by side,
        `labels` name each image's value. `pipeline` is "text2im", "clip_guided" or
        "inpaint" (then give `image` and `mask`)."""
        inputs = dict(image=image, mask=mask) if pipeline == "inpaint" else {}
        request = _request(pipeline, prompt=prompt, seed=-1 if seed is None else seed,
                           batch_size=batch_size, **inputs,
                           **_with_preview_default(settings, callback))
        return self._run(sweep(request, self.manager, param=param, values=list(values)),
                         callback)

    def upsample(self, images: Iterable[ImageSource], *,
                 callback: PreviewCallback | None = None) -> GlideOutput:
        """Pick, then upsample: the 256 px upsampler on 64 px base images made by `text2im`
        with upsample=False (their PNGs, paths or bytes or PIL images, carrying their
        recipes; one prompt and settings). Each result is pixel-identical to its seed
        upsampled in one go, with the same recipe. Raises RequestError otherwise."""
        picks = [(load_image(source), recipe_of(source)) for source in images]
        overrides = _with_preview_default({}, callback)
        return self._run(upsample_picked(picks, self.manager, **overrides), callback)

    def rank(self, images: Iterable[ImageSource], prompt: str,
             model: str = DEFAULT_RANKER) -> list[float]:
        """CLIP similarity (cosine, about -1 to 1; higher is a better match) of each image
        with `prompt`, in the order given. Images: PIL images, arrays or files (up to 64)."""
        sources = list(images)
        check_rank_count(len(sources))
        return rank((load_image(source) for source in sources), prompt, self.manager, model)

    def rerun(self, source: ImageSource | Recipe, *, image: ImageSource | None = None,
              mask: Any = None, callback: PreviewCallback | None = None) -> GlideOutput:
        """Make again the image a recipe describes: `source` is a PNG made by glide-ui (a
        path, bytes or PIL image) or a Recipe. An inpainting or sketch recipe needs its
        `image` and `mask` again (no mask for an inpainting made from shapes alone; a
        sketch's: the picture with its strokes painted on, and the strokes or their mask),
        an outpainting, variations or upscaling recipe its `image`. Differences that change pixels
        (another device or dtype, other checkpoints, other inputs) are reported as
        warnings."""
        recipe = source if isinstance(source, Recipe) else recipe_of(source)
        inputs = {name: value for name, value in (("image", image), ("mask", mask))
                  if value is not None}
        request = request_from_recipe(recipe, **inputs)
        if callback is not None:
            request = replace(request, preview_interval=0.0)
        for note in place_notes(recipe, self.manager):
            self.on_status(Status(note, "warning"))
        output = self._run(job(recipe.pipeline).run(request, self.manager), callback)
        for note in reproduction_notes(recipe, output.recipes[0]):
            self.on_status(Status(note, "warning"))
        return output

    # ------------------------------------------------------------------ running

    def _generate(self, pipeline: str, values: dict[str, Any], seed: Seeds,
                  batch_size: int | None, rank_images: bool,
                  callback: PreviewCallback | None) -> GlideOutput:
        values = _with_preview_default(values, callback)
        requests = [_request(pipeline, **values, seed=first, batch_size=count)
                    for first, count in seed_runs(seed, batch_size)]
        for request in requests:
            validate(request)  # refuse a bad value before the first image is made
        run = job(pipeline).run
        events = run(requests[0], self.manager) if len(requests) == 1 else \
            concatenated([run(request, self.manager) for request in requests])
        if rank_images:
            events = ranked(events, values["prompt"], self.manager)
        return self._run(events, callback)

    def _run(self, events: Iterator[Event], callback: PreviewCallback | None) -> GlideOutput:
        """Drive a pipeline: progress bars, statuses, previews to `callback`; its Result.
        An exception (or Ctrl-C) closes the pipeline at once, within the step under way."""
        result, strips = None, {}
        with closing(events), StageBars(self.progress) as bars:
            for event in events:
                if isinstance(event, Status):
                    self.on_status(event)
                elif isinstance(event, Progress):
                    bars.show(event)
                elif isinstance(event, Preview) and callback is not None:
                    callback(event)
                elif isinstance(event, Result):
                    result = event
                elif isinstance(event, Filmstrips):
                    strips.update(zip(event.seeds, zip(event.animations, event.sheets,
                                                       strict=True), strict=True))
        if result is None:
            raise RuntimeError("the pipeline ended without a result")
        images = [with_recipe(image, recipe)
                  for image, recipe in zip(result.images, result.recipes, strict=True)]
        return GlideOutput(images, list(result.recipes), list(result.labels), result.grid,
                           strips)

    def _show_status(self, status: Status) -> None:
        if status.level == "warning":
            warnings.warn(status.text, UserWarning, stacklevel=4)
        elif self.progress:
            tqdm.write(status.text, file=sys.stderr)
        else:
            log.info(status.text)


# ---------------------------------------------------------------------- helpers


def _request(pipeline: str, **values: Any) -> Request:
    """The request of `pipeline` from keyword values; RequestError naming what is unknown."""
    kind = job(pipeline).request
    names = [f.name for f in fields(kind)]
    values = {canonical(name): value for name, value in values.items()}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise RequestError(f"Unknown setting {', '.join(unknown)} for {pipeline}; the "
                           f"settings are {', '.join(names)}.")
    return kind(**values)


def _with_preview_default(values: dict[str, Any], callback: PreviewCallback | None) \
        -> dict[str, Any]:
    """With a callback, a preview every step (unless preview_interval is given)."""
    if callback is None or "preview_interval" in values:
        return values
    return {**values, "preview_interval": 0.0}
