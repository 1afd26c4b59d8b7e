"""OpenAI CLIP wrapper: loading, preprocessing, tokens, embeddings (tiny random model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from glide_ui import openai_clip
from glide_ui.openai_clip import (
    IMAGE_MEAN,
    IMAGE_STD,
    OpenAIClip,
    build_openai_clip,
    clip_submodule,
    load_jit_or_state_dict,
    preprocess,
    tiny_openai_clip,
    tiny_openai_clip_state_dict,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return tiny_openai_clip_state_dict(seed=0)


@pytest.fixture(scope="module")
def model(state_dict) -> OpenAIClip:
    return OpenAIClip(build_openai_clip(state_dict))


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_clip_package_is_never_imported() -> None:
    code = ("import sys, glide_ui.openai_clip as o; m = o.tiny_openai_clip(0);"
            "m.similarity(o.torch.zeros(1, 3, 64, 64), 'a dog');"
            "o.clip_submodule('simple_tokenizer');"
            "bad = {'clip', 'torchvision', 'pkg_resources'} & set(sys.modules);"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_tiny_state_dict_is_deterministic_and_leaves_global_rng_alone() -> None:
    rng = torch.random.get_rng_state()
    first, again, other = (tiny_openai_clip_state_dict(seed) for seed in (3, 3, 4))
    assert torch.equal(rng, torch.random.get_rng_state())
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["visual.conv1.weight"], other["visual.conv1.weight"])


def test_build_round_trips_the_state_dict_exactly(state_dict, model) -> None:
    # Exact: no fp16 round trip of the float32 weights on the way in.
    built = model.model.state_dict()
    assert built.keys() == state_dict.keys()
    assert all(built[k].dtype == torch.float32 and torch.equal(built[k], v)
               for k, v in state_dict.items())
    assert model.input_resolution == 224 and model.context_length == 77


def test_build_does_not_modify_the_callers_dict(state_dict) -> None:
    extended = {**state_dict, "input_resolution": torch.tensor(224),
                "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
    build_openai_clip(extended)
    assert "input_resolution" in extended and "vocab_size" in extended


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning",
                            "ignore:.*looks like a TorchScript archive:UserWarning")
def test_loads_torchscript_archive_like_the_official_files(tmp_path, state_dict, model) -> None:
    path = tmp_path / "tiny-jit.pt"
    example = (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long))
    torch.jit.trace(model.model, example, check_trace=False).save(str(path))
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.load(path, weights_only=True)
    loaded = load_jit_or_state_dict(path)
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state_dict.items())


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_loads_plain_state_dict_files(tmp_path, state_dict, suffix) -> None:
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".pt":
        torch.save(state_dict, path)
    else:
        save_file(state_dict, str(path))
    assert not openai_clip.is_torchscript_archive(path)
    loaded = load_jit_or_state_dict(path)
    assert all(torch.equal(loaded[k], v) for k, v in state_dict.items())


@pytest.mark.parametrize(("height", "width"), [(64, 64), (256, 256), (300, 200), (150, 400)])
def test_preprocess_matches_pil_bicubic_crop_and_normalise(height, width) -> None:
    images = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1)) * 2 - 1
    actual = preprocess(images)
    assert actual.shape == (1, 3, 224, 224) and actual.dtype == torch.float32
    # The clip-anytorch transform with PIL's float images: Resize(224, BICUBIC),
    # CenterCrop(224), Normalize(mean, std).
    short = min(height, width)
    new_w, new_h = int(224 * width / short), int(224 * height / short)
    left, top = round((new_w - 224) / 2), round((new_h - 224) / 2)
    channels = []
    for c in range(3):
        pil = Image.fromarray(((images[0, c] + 1) / 2).numpy(), mode="F")
        resized = pil.resize((new_w, new_h), Image.BICUBIC).crop((left, top, left + 224,
                                                                   top + 224))
        channels.append((np.asarray(resized) - IMAGE_MEAN[c]) / IMAGE_STD[c])
    expected = torch.from_numpy(np.stack(channels)).float()[None]
    assert (actual - expected).abs().max().item() < 2e-4


def test_preprocess_of_constant_image_is_normalised_constant() -> None:
    images = torch.full((2, 3, 64, 64), 0.5)
    expected = (0.75 - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
    assert torch.allclose(preprocess(images), expected[None, :, None, None].expand(2, 3, 224,
                                                                                 224), atol=1e-5)


def test_tokens_match_clip_tokenize_with_truncation(model) -> None:
    simple = clip_submodule("simple_tokenizer").SimpleTokenizer()
    prompts = ["a photo of a corgi", "", "a very long prompt about castles " * 30]
    tokens, truncated = model.tokenize(prompts)
    for row, prompt in zip(tokens.tolist(), prompts, strict=True):
        # What clip.tokenize(prompt, truncate=True) returns.
        ids = [49406, *simple.encode(prompt), 49407]
        if len(ids) > 77:
            ids = ids[:76] + [49407]
        assert row == ids + [0] * (77 - len(ids))
    assert truncated == [False, False, True]


def test_embeddings_are_unit_vectors_of_the_model_features(model) -> None:
    images = _images(2, 64)
    with torch.no_grad():
        image_emb = model.encode_images(images)
        text_emb = model.encode_text(["a dog", "a cat"])
        raw = model.model.encode_image(preprocess(images))
    assert image_emb.shape == (2, 32) and text_emb.shape == (2, 32)
    assert torch.allclose(image_emb.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(image_emb, raw / raw.norm(dim=-1, keepdim=True), atol=1e-6)
    assert not torch.allclose(text_emb[0], text_emb[1])


def test_similarity_is_cosine_and_per_image(model) -> None:
    images = _images(3, 64)
    with torch.no_grad():
        sims = model.similarity(images, "a dog")
        alone = model.similarity(images[1:2], "a dog")
        expected = model.encode_images(images) @ model.encode_text(["a dog"])[0]
    assert sims.shape == (3,) and bool((sims.abs() <= 1).all())
    assert torch.allclose(sims, expected) and torch.allclose(alone[0], sims[1], atol=1e-6)


def test_gradient_flows_through_preprocessing_to_the_image(model) -> None:
    images = _images(1, 64).requires_grad_(True)
    model.similarity(images, "a dog").sum().backward()
    assert images.grad is not None and images.grad.shape == images.shape
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_tiny_builder_gives_a_working_wrapper() -> None:
    with torch.no_grad():
        first = tiny_openai_clip(5).encode_text(["a dog"])
        second = tiny_openai_clip(5).encode_text(["a dog"])
    assert torch.equal(first, second)
