"""The picture inputs of the editing tabs, size-guarded: the inpainting mask editor (Gradio's
image mask: brush, eraser, undo, clear), any image editor, and a plain picture upload."""

from __future__ import annotations

import json
import time
from io import BytesIO
from pathlib import Path
from typing import TypeVar

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder
from PIL import Image

from glide_ui.errors import GlideUIError, RequestError
from glide_ui.images import load_image, open_image, to_rgb
from glide_ui.pipelines.inpaint import image_record

BRUSH = gr.Brush(colors=[("#ff3030", 0.55)], color_mode="fixed")
BRUSH_RGBA = (255, 48, 48, 140)  # the brush's colour and opacity, for layers made here
E = TypeVar("E", bound=gr.ImageEditor)


def mask_editor(**kwargs) -> gr.ImageMask:
    """A `gr.ImageMask` whose uploads are checked before Gradio decodes them.

    Gradio decodes the editor's files before any handler runs, so the check wraps the
    component's own conversion: a file that is no image, or one over the pixel limit, is
    refused on its header and shown as a message; a 16/32-bit picture is brought to 8 bits
    first (Gradio's own conversion would clip its levels to black and white), and a photo
    is turned upright by its EXIF orientation (Gradio's would keep the stored pixels, so an
    API client's mask, painted on the upright view, would not fit it).
    (Wrapping the instance rather than subclassing keeps Gradio from writing a .pyi stub
    next to this module.)
    """
    options = dict(brush=BRUSH, eraser=gr.Eraser(), layers=False,
                   transforms=(), sources=("upload", "clipboard"), type="pil", format="png")
    return checked(gr.ImageMask(**{**options, **kwargs}))


def checked(editor: E) -> E:
    """`editor` (any gr.ImageEditor) with its uploads checked as `mask_editor` says."""
    convert = editor.convert_and_format_image

    def checked_convert(file: FileData | bytes | None, flatten_on_white: bool = False):
        if file is not None:
            file = as_shown(file)
        return convert(file, flatten_on_white)

    editor.convert_and_format_image = checked_convert
    return editor


def picture_input(**kwargs) -> gr.Image:
    """An image upload handed on as a file path, checked on its header first (not an
    image, or over the pixel limit: a message), as the editors' uploads are; the pipeline
    decodes it (upright, as a viewer shows it)."""
    picture = gr.Image(type="filepath", sources=["upload", "clipboard"], **kwargs)
    preprocess = picture.preprocess

    def checked_preprocess(payload):
        if payload is not None and payload.path:
            check_image(FileData(path=payload.path))
        return preprocess(payload)

    picture.preprocess = checked_preprocess
    return picture


def picture_inputs(picture: str | None) -> dict[str, str] | None:
    """The fingerprints (as an outpainting or variations recipe records them) of the
    picture at `picture`, or None when there is none or it cannot be read."""
    try:
        return image_record(load_image(picture)) if picture else None
    except GlideUIError:
        return None


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
    _open_checked(file).close()


def as_shown(file: FileData | bytes) -> FileData | bytes:
    """`file` once checked (see `check_image`), as `open_image` decodes it: a picture of
    more than 8 bits per sample, or one with an EXIF orientation, comes back as PNG bytes
    (8-bit RGB with levels scaled as `to_rgb` does; upright). Others come back as they are."""
    with _open_checked(file) as image:
        turned = image.format is None  # Pillow's mark of an image it made: `upright` turned it
        deep = image.mode in ("I", "F") or image.mode.startswith("I;16")
        if not (turned or deep):
            return file
        if image.mode not in _PNG_MODES:
            image = to_rgb(image)
        buffer = BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")  # saved as PNG without a conversion


def _open_checked(file: FileData | bytes) -> Image.Image:
    source = file.path if isinstance(file, FileData) else BytesIO(bytes(file))
    try:
        return open_image(source)
    except RequestError as error:
        raise gr.Error(str(error)) from None


# Runs in the page. The editor decodes a chosen file in the browser and sends the server only
# what its canvas holds, so a file it cannot decode would vanish without a word, and a huge
# one would be decoded by the browser first. This catches the file on its way in (a capturing
# listener runs before Gradio's own), has the server read its header, and either shows the
# reason or hands the same event on to the editor.
_GUARD_JS = """
const editorId = %s;
const passed = new WeakSet();
const say = (text) => { element.textContent = text; element.hidden = !text; };
say("");
async function verdict(file) {
  if (!file.size) return "The file is empty (0 bytes): choose a picture.";
  try {
    const sent = await upload(file);
    return await server.check_upload(sent.path);
  } catch (error) {
    const reason = String((error && error.message) || error || "");
    return /maxim|size|413/i.test(reason)
      ? "The file is too large to upload (" + reason + ")."
      : "The file could not be sent to the server; try again.";
  }
}
function handOn(event, files) {
  let again;
  if (event.type === "drop") {
    const transfer = new DataTransfer();
    files.forEach((file) => transfer.items.add(file));
    again = new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: transfer});
  } else {
    again = new Event("change", {bubbles: true});
  }
  passed.add(again);
  event.target.dispatchEvent(again);
}
async function check(event, files) {
  say("Checking the file...");
  const message = await verdict(files[0]);
  say(message || "");
  if (!message) handOn(event, files);
  else if (event.type === "change") event.target.value = "";
  else event.target.dispatchEvent(new DragEvent("dragleave", {bubbles: true}));
}
function intercept(event) {
  const editor = document.getElementById(editorId);
  if (passed.has(event) || !editor || !editor.contains(event.target)) return;
  const files = event.type === "drop"
    ? (event.dataTransfer && event.dataTransfer.files) : event.target.files;
  if (!files || !files.length) return;
  event.stopImmediatePropagation();
  event.preventDefault();
  check(event, Array.from(files));
}
const key = "glideUploadGuard:" + editorId;  // a re-mounted guard replaces the old one
for (const type of ["change", "drop"]) {
  if (window[key]) document.removeEventListener(type, window[key], true);
  document.addEventListener(type, intercept, true);
}
window[key] = intercept;
"""

_GUARD_CSS = "color: var(--error-text-color, #b91c1c); font-weight: 600; padding: 2px 4px;"
_UPLOAD_WAIT = 5.0  # seconds: Gradio moves an upload into place after answering


def upload_guard(editor: gr.ImageMask) -> gr.HTML:
    """A line under `editor` that refuses a chosen file before the browser decodes it.

    The file is uploaded and read by `check_upload` (header first, so a bomb costs
    nothing); the reason shows here when it is refused, otherwise the editor gets it.
    """
    if not editor.elem_id:
        raise ValueError("the mask editor needs an elem_id for its upload guard")
    return gr.HTML("", js_on_load=_GUARD_JS % json.dumps(editor.elem_id),
                   css_template=_GUARD_CSS, server_functions=[check_upload],
                   elem_id=f"{editor.elem_id}-upload-message", container=False,
                   padding=False, apply_default_css=False)


def check_upload(path: str) -> str:
    """"" when the uploaded file at `path` is an image the editor may load, else why not.

    Only files in Gradio's upload folder are read: the path comes from the page.
    """
    folder = Path(get_upload_folder()).resolve()
    file = Path(str(path)).resolve()
    if not file.is_relative_to(folder):
        return "That file was not uploaded here."
    deadline = time.monotonic() + _UPLOAD_WAIT
    while not file.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        check_image(FileData(path=str(file)))
    except gr.Error as error:
        return error.message
    except OSError:
        return "The upload could not be read; try again."
    return ""
