"""What a job of the Python API returns: the images, each carrying the recipe that
reproduces it, and how they are saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

from glide_ui.files import cannot_write, writable_folder, write_new
from glide_ui.images import png_bytes, png_text
from glide_ui.recipe import Recipe


@dataclass
class GlideOutput:
    """What a job returns: the images (PIL, RGB), each with the recipe that reproduces it.

    Every image carries its recipe as PNG text (`image.info["glide-ui"]` and a readable
    `image.info["parameters"]`), which `image.save("x.png")` writes into the file.
    `labels` say what sets images apart (a sweep's value, a CLIP score), `grid` is a
    labelled overview (sweeps) or None. `filmstrips` (with filmstrip_frames > 0) maps an
    image's seed to how it formed: (an animated WebP as bytes, a contact sheet).
    """

    images: list[Image.Image]
    recipes: list[Recipe]
    labels: list[str] = field(default_factory=list)
    grid: Image.Image | None = None
    filmstrips: dict[int, tuple[bytes, Image.Image]] = field(default_factory=dict)

    def save(self, folder: str | Path = ".") -> list[Path]:
        """Write each image as a PNG with its recipe into `folder` (made if needed), named
        after the recipe ("glide-text2im-a-corgi-42.png"), never over an existing file,
        even one another thread or process writes at the same moment (then "-2", "-3"...).
        Returns the paths, in the order of `images`. An image's filmstrip (see
        `filmstrips`) goes beside it, written the same way: NAME-filmstrip.webp and its
        contact sheet NAME-filmstrip.png.

        Raises FolderError (a GlideUIError and an OSError) saying why when `folder` cannot
        be made or written into, or the disk fills up; the images stay here, to be saved
        elsewhere. To check a folder before a long run: `glide_ui.files.writable_folder`.
        """
        folder = writable_folder(folder)
        try:
            return [self._save_one(folder, image, recipe)
                    for image, recipe in zip(self.images, self.recipes, strict=True)]
        except OSError as error:
            raise cannot_write(folder, error) from None

    def _save_one(self, folder: Path, image: Image.Image, recipe: Recipe) -> Path:
        path = write_new(folder, recipe.file_stem(), ".png", png_bytes(image, recipe))
        strip = self.filmstrips.get(recipe.seed)
        if strip is not None:  # how it formed, next to it
            write_new(folder, f"{path.stem}-filmstrip", ".webp", strip[0])
            write_new(folder, f"{path.stem}-filmstrip", ".png", png_bytes(strip[1]))
        return path


def with_recipe(image: Image.Image, recipe: Recipe) -> Image.Image:
    """`image` carrying `recipe` as PNG text: in `image.info` (as an opened PNG has it) and
    in the encoder settings, so that a plain `image.save("x.png")` writes it (Pillow >= 11.3
    keeps `encoderinfo` across saves)."""
    text = png_text(recipe)
    image.info.update(text)
    chunks = PngImagePlugin.PngInfo()
    for key, value in text.items():
        chunks.add_text(key, value)
    image.encoderinfo = {**getattr(image, "encoderinfo", {}), "pnginfo": chunks}
    return image
