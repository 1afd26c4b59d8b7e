"""Rank images by OpenAI CLIP similarity to a prompt, after any pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
from PIL import Image

from glide_ui.checkpoints import OPENAI_CLIP_NAMES
from glide_ui.errors import RequestError
from glide_ui.images import load_image, pil_to_tensor
from glide_ui.openai_clip import require_clip_code
from glide_ui.pipelines.clip_guided import as_openai_clip
from glide_ui.pipelines.common import loading_notices
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.requests import clean_prompt

DEFAULT_RANKER = "ViT-B/32"
MAX_RANK_IMAGES = 64  # the largest gallery the app makes: a sweep of 8 values x batch 8


def rank(images: Iterable[Image.Image], prompt: str, manager: Any,
         model: str = DEFAULT_RANKER) -> list[float]:
    """Cosine similarity of each image with `prompt` under OpenAI CLIP `model`.

    `images` may be a lazy iterable (e.g. decoding files one by one): each is scored and
    let go before the next is taken. Each is read as a viewer shows it (`load_image`: EXIF
    orientation applied, RGB), so a phone photo scores as it looks."""
    if isinstance(images, Sequence):
        check_rank_count(len(images))
    prompt = _ranking_prompt(prompt, model)
    with manager.use(model) as (clip_model,):
        clip = as_openai_clip(clip_model)
        device = next(clip.parameters()).device
        with torch.no_grad():
            text = clip.encode_text([prompt])[0]
            # One image per call, so a score does not depend on its batch (see per_image).
            return [float(clip.encode_images(pil_to_tensor(load_image(image)).to(device))[0]
                          @ text) for image in images]


def check_rank_count(count: int) -> None:
    if count > MAX_RANK_IMAGES:
        raise RequestError(f"Rank at most {MAX_RANK_IMAGES} images at once, not {count}.")


def best_first(result: Result, scores: Sequence[float]) -> Result:
    """`result` reordered by descending score, each label saying its CLIP score."""
    order = sorted(range(len(result.images)), key=lambda i: -scores[i])
    labels = [_with_score(result.labels[i] if i < len(result.labels) else "", scores[i])
              for i in order]
    return replace(result, images=[result.images[i] for i in order],
                   recipes=[result.recipes[i] for i in order], labels=labels)


def rank_result(result: Result, prompt: str, manager: Any,
                model: str = DEFAULT_RANKER) -> Result:
    """`result` best first by CLIP similarity to `prompt`."""
    return best_first(result, rank(result.images, prompt, manager, model))


def ranked(events: Iterable[Event], prompt: str, manager: Any,
           model: str = DEFAULT_RANKER) -> Iterator[Event]:
    """Pass a pipeline's events through, its Result reordered best first."""
    _ranking_prompt(prompt, model)  # refuse before the pipeline runs
    for event in events:
        if isinstance(event, Result):
            yield from loading_notices(manager, (model,))
            event = rank_result(event, prompt, manager, model)
        yield event


def ranked_run(pipeline: Callable[..., Iterator[Event]], request: Any, prompt: str,
               manager: Any, model: str = DEFAULT_RANKER) -> Iterator[Event]:
    """`pipeline(request, manager=manager)`'s events, its Result best first by CLIP (one
    call, so that a replica runs both the pipeline and the ranking)."""
    return ranked(pipeline(request, manager=manager), prompt, manager, model)


def _ranking_prompt(prompt: str, model: str) -> str:
    """The cleaned prompt; RequestError for an unknown model or an empty prompt,
    MissingPackageError without clip-anytorch."""
    if model not in OPENAI_CLIP_NAMES:
        raise RequestError(f"Unknown CLIP model {model!r}; choose one of "
                           f"{', '.join(OPENAI_CLIP_NAMES)}.")
    text, _ = clean_prompt(prompt)
    if not text:
        raise RequestError("Ranking by CLIP needs a prompt to compare the images with.")
    require_clip_code()
    return text


def _with_score(label: str, score: float) -> str:
    return f"{label} · CLIP {score:.3f}" if label else f"CLIP {score:.3f}"
