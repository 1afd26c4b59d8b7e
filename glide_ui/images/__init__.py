"""Pictures in and out, a module per job: `decode` (safe decoding, EXIF-upright, size
limits), `tensors` (PIL <-> model tensors), `masks` (every form a mask comes in; grow,
feather, resize), `crops` (the square the inpainting models see, pasted back), `grids`
(labelled grids) and `png` (the recipe in PNG text chunks). The names below are the public
ones, re-exported here so `from glide_ui.images import ...` keeps working.
"""

from glide_ui.images.crops import Box, crop, crop_box, crop_mask, mask_preview, paste_back
from glide_ui.images.decode import (
    MAX_PIXELS,
    ImageSource,
    load_image,
    open_image,
    to_rgb,
    upright,
)
from glide_ui.images.grids import make_grid
from glide_ui.images.masks import (
    GREY_SPREAD,
    MASK_LEVEL,
    MAX_MID_GREY_SHARE,
    MID_GREY,
    distance_to_mask,
    feather_alpha,
    fit_mask,
    grow_mask,
    mask_bbox,
    paint_strokes,
    read_mask,
    resize_mask,
)
from glide_ui.images.png import (
    MAX_TEXT_CHUNK,
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    PNG_SIGNATURE,
    png_bytes,
    png_text,
    read_png_text,
    read_recipe,
    save_png,
)
from glide_ui.images.tensors import pil_to_tensor, quantize, tensor_to_pil, to_uint8

__all__ = ["GREY_SPREAD", "MASK_LEVEL", "MAX_MID_GREY_SHARE", "MAX_PIXELS", "MAX_TEXT_CHUNK",
           "MID_GREY", "PNG_PARAMETERS_KEY", "PNG_RECIPE_KEY", "PNG_SIGNATURE", "Box",
           "ImageSource", "crop", "crop_box", "crop_mask", "distance_to_mask",
           "feather_alpha", "grow_mask", "load_image", "make_grid",
           "mask_bbox", "read_mask", "fit_mask", "mask_preview", "open_image", "paint_strokes",
           "paste_back", "pil_to_tensor", "png_bytes", "png_text", "quantize",
           "read_png_text", "read_recipe", "resize_mask", "save_png", "tensor_to_pil",
           "to_rgb", "to_uint8", "upright"]
