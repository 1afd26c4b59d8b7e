"""Pick, then upsample, from Python and the command line: 64 px base pictures made with
the upsampler off, upsampled later, give the pixels (and recipes) of one go."""

from __future__ import annotations

import numpy as np
import pytest

from glide_ui import Glide
from glide_ui.cli import main
from glide_ui.errors import RequestError
from glide_ui.images import load_image

SETTINGS = dict(base_respacing="3", upsample_respacing="2", negative_prompt="fog")


@pytest.fixture(scope="module")
def glide() -> Glide:
    return Glide("tiny", device="cpu", dtype="fp32", progress=False)  # as the CLI below


def test_upsampling_picked_bases_gives_the_pixels_of_one_go(glide, tmp_path, capsys):
    bases = glide.text2im("a lighthouse", seed=20, batch_size=3, upsample=False, **SETTINGS)
    whole = glide.text2im("a lighthouse", seed=[20, 22], **SETTINGS)
    paths = bases.save(tmp_path / "bases")
    later = glide.upsample([paths[0], paths[2]])
    assert [r.seed for r in later.recipes] == [20, 22]
    assert later.recipes == whole.recipes
    for made, again in zip(whole.images, later.images, strict=True):
        assert np.array_equal(np.asarray(made), np.asarray(again))

    code = main(["upsample", str(paths[2]), "--models", "tiny", "--device", "cpu",
                 "--dtype", "fp32",
                 "--out", str(tmp_path / "cli"), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert np.array_equal(np.asarray(load_image(out.strip())), np.asarray(whole.images[1]))


def test_only_base_pictures_of_one_run_can_be_upsampled(glide, tmp_path):
    full = glide.text2im("a lighthouse", seed=1, **SETTINGS).save(tmp_path)
    with pytest.raises(RequestError, match="64 px base images"):
        glide.upsample(full)
