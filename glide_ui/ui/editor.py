"""The inpainting mask editor: Gradio's image mask (brush, eraser, undo, clear), size-guarded."""

from __future__ import annotations

from io import BytesIO

import gradio as gr
from gradio.data_classes import FileData
from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.images import open_image

BRUSH = gr.Brush(colors=[("#ff3030", 0.55)], color_mode="fixed")


def mask_editor(**kwargs) -> gr.ImageMask:
    """A `gr.ImageMask` whose uploads are checked before Gradio decodes them.

    Gradio decodes the editor's files before any handler runs, so the check wraps the
    component's own conversion: a file that is no image, or one over the pixel limit, is
    refused on its header and shown as a message. (Wrapping the instance rather than
    subclassing keeps Gradio from writing a .pyi stub next to this module.)
    """
    options = dict(brush=BRUSH, eraser=gr.Eraser(), layers=False,
                   transforms=(), sources=("upload", "clipboard"), type="pil", format="png")
    editor = gr.ImageMask(**{**options, **kwargs})
    convert = editor.convert_and_format_image

    def checked_convert(file: FileData | bytes | None, flatten_on_white: bool = False):
        if file is not None:
            check_image(file)
        return convert(file, flatten_on_white)

    editor.convert_and_format_image = checked_convert
    return editor


def editor_value(path: str) -> dict:
    """The editor value that loads the picture at `path` with nothing painted yet.

    The blank layer matters: the browser editor drops the first change event after a new
    value; one that comes with a layer spends it, so the first brush stroke updates the
    model's-view preview (a bare picture would leave that stroke unnoticed).
    """
    size = open_image(path).size
    return {"background": path, "layers": [Image.new("RGBA", size, (0, 0, 0, 0))],
            "composite": path}


def check_image(file: FileData | bytes) -> None:
    """Raise a page message unless `file` is a readable image within the pixel limit."""
    source = file.path if isinstance(file, FileData) else BytesIO(bytes(file))
    try:
        open_image(source).close()
    except RequestError as error:
        raise gr.Error(str(error)) from None
