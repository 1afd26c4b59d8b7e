"""Filmstrips: evenly spaced frames in bounded memory, animated WebP and contact sheets."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageSequence
from pipeline_runs import run

from glide_ui.glide.samplers import SamplerStep
from glide_ui.pipelines.common import PreviewSettings, follow, kept_steps
from glide_ui.pipelines.events import Filmstrips, Frame, Preview
from glide_ui.pipelines.filmstrip import with_filmstrips
from glide_ui.pipelines.requests import Text2ImRequest
from glide_ui.pipelines.text2im import text2im


def test_kept_steps_are_evenly_spaced_with_both_ends() -> None:
    assert kept_steps(1000, 5) == {0, 250, 500, 749, 999}  # 249.75 -> 250, 749.25 -> 749
    assert kept_steps(3, 8) == {0, 1, 2}
    assert kept_steps(10, 1) == {9}


def fake_steps(total: int):
    for k in range(total):
        x = torch.full((1, 3, 8, 8), k / total * 2 - 1)
        yield SamplerStep(k, total, total - 1 - k, total - 1 - k, x, x)


def test_frames_are_bounded_whatever_the_step_count() -> None:
    for total in (10, 1000, 20000):
        events = list(with_filmstrips(follow("base", fake_steps(total),
                                             PreviewSettings(3600, frames=6))))
        frames = [e for e in events if isinstance(e, Frame)]
        assert [f.step for f in frames] == sorted(s + 1 for s in kept_steps(total, 6))
        assert len(frames) == 6 and frames[-1].step == total
    no_film = list(follow("base", fake_steps(50), PreviewSettings(3600)))
    assert not any(isinstance(e, Frame) for e in no_film)


def test_text2im_filmstrips_per_image(manager) -> None:
    request = Text2ImRequest(prompt="a corgi", batch_size=2, seed=3, base_respacing="6",
                             upsample_respacing="3", preview_interval=3600,
                             filmstrip_frames=4)
    events, result = run(text2im(request, manager))
    frames = [e for e in events if isinstance(e, Frame)]
    assert [(f.stage, f.step) for f in frames] == [("base", 1), ("base", 3), ("base", 4),
                                                   ("base", 6), ("upsample", 1),
                                                   ("upsample", 2), ("upsample", 3)]
    assert sum(isinstance(e, Preview) for e in events) == 4  # previews as without filmstrip
    (film,) = [e for e in events if isinstance(e, Filmstrips)]
    assert events.index(film) == events.index(result) + 1
    assert len(film.animations) == len(film.sheets) == 2 and film.seeds == [3, 4]
    for i, data in enumerate(film.animations):
        with Image.open(io.BytesIO(data)) as webp:
            pictures = [p.convert("RGB") for p in ImageSequence.Iterator(webp)]
        assert len(pictures) == 7 and pictures[0].size == (256, 256)
        # lossless: the last frame is the upsampler's last x0 prediction, the image itself
        assert np.array_equal(np.asarray(pictures[-1]), np.asarray(result.images[i]))
        assert film.sheets[i].width > 4 * 256
    assert "filmstrip_frames" not in result.recipes[0].settings
