import math

import numpy as np
import pytest
from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.pipelines.requests import (
    MAX_BATCH_SIZE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    ClipGuidedRequest,
    InpaintRequest,
    Text2ImRequest,
    clean_prompt,
    respacing_steps,
    validate,
)
from glide_ui.ui.editor_values import mask_from_editor


def inpaint_request(**changes) -> InpaintRequest:
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:10, 5:10] = True
    fields = dict(image=Image.new("RGB", (40, 30), (10, 20, 30)), mask=mask, prompt="a hat")
    return InpaintRequest(**{**fields, **changes})


def test_a_default_request_is_valid_and_unchanged():
    request = Text2ImRequest(prompt="a corgi")
    checked, notices = validate(request)
    assert checked == request and notices == []


def test_form_numbers_become_ints_and_respacing_is_normalised():
    checked, _ = validate(Text2ImRequest(prompt="x", batch_size=4.0, seed=7.0,
                                         base_respacing=" ddim25 ", upsample_respacing=27))
    assert checked.batch_size == 4 and isinstance(checked.batch_size, int)
    assert checked.seed == 7 and isinstance(checked.seed, int)
    assert checked.base_respacing == "ddim25" and checked.upsample_respacing == "27"


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "Batch size"),
    ({"batch_size": MAX_BATCH_SIZE + 1}, "Batch size"),
    ({"batch_size": 2.5}, "Batch size"),
    ({"batch_size": True}, "Batch size"),
    ({"guidance_scale": -0.1}, "Guidance scale"),
    ({"guidance_scale": 1000.0}, "Guidance scale"),
    ({"guidance_scale": math.nan}, "Guidance scale"),
    ({"guidance_scale": "3"}, "Guidance scale"),
    ({"upsample_temp": 2.0}, "Upsample temperature"),
    ({"upsample_temp": math.inf}, "Upsample temperature"),
    ({"base_respacing": "abc"}, "Base steps"),
    ({"base_respacing": "0"}, "Base steps"),
    ({"base_respacing": "1"}, "Base steps"),
    ({"base_respacing": "ddim1"}, "Base steps"),
    ({"base_respacing": "1001"}, "Base steps"),
    ({"base_respacing": ""}, "Base steps"),
    ({"base_respacing": "1," * 200}, "Base steps"),
    ({"upsample_respacing": "ddim999"}, "Upsampler steps"),
    ({"sampler": "euler"}, "Sampler"),
    ({"seed": -2}, "Seed"),
    ({"seed": MAX_SEED + 1}, "Seed"),
    ({"seed": MAX_SEED, "batch_size": 2}, "Seed"),
    ({"preview_interval": -1.0}, "Preview interval"),
])
def test_bad_text2im_requests_raise_request_error(changes, message):
    with pytest.raises(RequestError, match=message):
        validate(Text2ImRequest(prompt="a corgi", **changes))


def test_seed_minus_one_and_none_mean_draw_one():
    assert validate(Text2ImRequest(prompt="x", seed=-1))[0].seed == -1
    assert validate(Text2ImRequest(prompt="x", seed=None))[0].seed == -1
    assert validate(Text2ImRequest(prompt="x", seed=MAX_SEED - 3, batch_size=4))[0].seed \
        == MAX_SEED - 3


def test_empty_prompt_is_unconditional_for_text2im_and_inpaint_but_an_error_for_clip():
    for request in (Text2ImRequest(prompt="   "), inpaint_request(prompt="")):
        checked, notices = validate(request)
        assert checked.prompt == ""
        assert [n.level for n in notices] == ["warning"]
        assert "unconditional" in notices[0].text
    with pytest.raises(RequestError, match="prompt"):
        validate(ClipGuidedRequest(prompt="\n"))


def test_clean_prompt_replaces_controls_and_surrogates_and_cuts_long_prompts():
    text, notices = clean_prompt("a\x00cat\x1b[31m\tred\nhat 🐈‍⬛ \ud800")
    assert text == "a cat [31m\tred\nhat 🐈‍⬛ ?"
    assert "2 control" in notices[0].text
    long_text, notices = clean_prompt("word " * 1000)
    assert len(long_text) == MAX_PROMPT_CHARS and notices[0].level == "warning"
    with pytest.raises(RequestError):
        clean_prompt(42)


def test_respacing_steps_counts_steps():
    assert respacing_steps("x", "100") == ("100", 100)
    assert respacing_steps("x", "fast27") == ("fast27", 27)
    assert respacing_steps("x", "ddim10") == ("ddim10", 10)
    assert respacing_steps("x", "10, 10,3,2,2") == ("10,10,3,2,2", 27)
    assert respacing_steps("x", 50.0) == ("50", 50)


def test_clip_guided_choices():
    assert validate(ClipGuidedRequest(prompt="x", clip_source="openai"))[0].clip_source \
        == "openai"
    for changes, message in (({"clip_source": "laion"}, "CLIP source"),
                             ({"openai_clip_model": "ViT-Z/1"}, "OpenAI CLIP model"),
                             ({"clip_scale": 51.0}, "CLIP guidance scale")):
        with pytest.raises(RequestError, match=message):
            validate(ClipGuidedRequest(prompt="x", **changes))


def test_inpaint_mask_checks():
    checked, notices = validate(inpaint_request())
    assert checked.mask.dtype == bool and checked.mask.sum() == 25 and notices == []
    with pytest.raises(RequestError, match="mask is empty"):
        validate(inpaint_request(mask=np.zeros((30, 40), dtype=bool)))
    with pytest.raises(RequestError, match="40 x 30"):
        validate(inpaint_request(mask=np.ones((40, 30), dtype=bool)))
    checked, notices = validate(inpaint_request(mask=np.ones((30, 40), dtype=bool)))
    assert "whole image" in notices[0].text and notices[0].level == "warning"
    for changes in ({"mask_grow": -10_000}, {"mask_feather": 10_000}):
        with pytest.raises(RequestError, match="Mask"):
            validate(inpaint_request(**changes))


def test_inpaint_accepts_an_editor_value_and_image_bytes():
    layer = np.zeros((30, 40, 4), dtype=np.uint8)
    layer[1:3, 1:4, 3] = 255
    image = Image.new("RGB", (40, 30))
    import io

    data = io.BytesIO()
    image.save(data, format="PNG")
    editor = {"background": np.zeros((30, 40, 3), np.uint8), "layers": [layer],
              "composite": None}
    checked, _ = validate(inpaint_request(image=data.getvalue(),
                                          mask=mask_from_editor(editor)))
    assert isinstance(checked.image, Image.Image) and checked.mask.sum() == 6


@pytest.mark.parametrize("image", [b"not an image", None, Image.new("RGB", (4, 100))])
def test_inpaint_refuses_undecodable_missing_or_tiny_images(image):
    with pytest.raises(RequestError):
        validate(inpaint_request(image=image))
