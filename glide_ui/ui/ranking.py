"""CLIP ranking of the images a gallery already shows (the "/rank" endpoint)."""

from __future__ import annotations

import re

from glide_ui.images import load_image
from glide_ui.pipelines.rank import check_rank_count, rank
from glide_ui.ui.backend import Backend
from glide_ui.ui.streaming import user_errors

_OLD_SCORE = re.compile(r"(^|\s·\s)CLIP -?[0-9.]+(?=$|\s·\s)")


def rank_gallery(items: list | None, prompt: str, backend: Backend) -> list[tuple]:
    """Gallery items (path, caption) best match first, each caption led by its CLIP score."""
    if not items:
        return []
    check_rank_count(len(items))
    paths = [item[0] for item in items]
    captions = [_OLD_SCORE.sub("", item[1] or "").strip(" ·") for item in items]
    # Here, decoded one at a time as they are scored, not all held at once; a runner
    # elsewhere cannot read this machine's files, so it gets the pixels.
    images = (load_image(path) for path in paths) if backend.shares_files \
        else [load_image(path) for path in paths]
    scores = backend.call(rank, images, prompt)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [(paths[i], " · ".join(filter(None, (f"CLIP {scores[i]:.3f}", captions[i]))))
            for i in order]


def rank_handler(backend: Backend):
    """The "/rank" handler: `images` (a gallery) and `prompt` in, the ranked gallery out."""

    @user_errors
    def rank_images(images, prompt):
        yield rank_gallery(images, prompt, backend)

    return rank_images
