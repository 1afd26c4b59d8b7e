"""Variations of a picture: new pictures that keep its composition (text-conditional
SDEdit, Meng et al. 2021, arXiv:2108.01073).

The picture's centre square at 64 px is noised to the step the strength picks and
denoised by the base model with classifier-free guidance and the prompt; then the normal
256 px upsampler runs on the result, as in text to image. Strength 0 leaves the 64 px
stage equal to the picture's own 64 px version; strength 1 is text to image.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from PIL import Image, ImageOps

from glide_ui.images import pil_to_tensor
from glide_ui.pipelines.common import begin
from glide_ui.pipelines.events import Event
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.inpaint import BASE_SIZE, image_record
from glide_ui.pipelines.requests import VariationsRequest
from glide_ui.pipelines.text2im import base_then_upsample


def base_view(image: Image.Image) -> Image.Image:
    """The picture as the base model starts from it: its centre square, resized (bicubic)
    to 64 x 64 RGB."""
    return ImageOps.fit(image.convert("RGB"), (BASE_SIZE, BASE_SIZE),
                        Image.Resampling.BICUBIC)


@filmstrips
def variations(request: VariationsRequest, manager: Any) -> Iterator[Event]:
    """`request.batch_size` variations of `request.image`; see the module docstring.
    Raises RequestError (before any work) for a bad request, e.g. a strength outside
    [0, 1]."""
    request, seeds = yield from begin(request)
    x0 = pil_to_tensor(base_view(request.image))
    yield from base_then_upsample("variations", request, seeds, manager, x0,
                                  **image_record(request.image))
