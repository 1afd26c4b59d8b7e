"""The GLIDE UNet: loading full-size checkpoints, the text-condition path, dtypes, variants.

Numerical agreement with the reference is in test_parity.py (models/*.pt); these tests
cover what the fixtures do not: checkpoint round trips at full size, bf16, meta-device
construction and the inputs each variant takes.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import reference_dir

from glide_ui.glide.nn import GroupNorm32, attention, split_heads, timestep_embedding
from glide_ui.glide.options import (
    MODEL_NAMES,
    clip_config,
    full_options,
    parse_attention_resolutions,
    parse_channel_mult,
    tiny_options,
)
from glide_ui.glide.unet import create_model

# bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); through ~30 layers the output
# drifts by about 1-2% of its scale, so allow 5% of max|fp32 output| elementwise.
BF16_REL_TOL = 0.05


def _inputs(options: dict, batch: int = 2, seed: int = 0) -> dict:
    """Random inputs for a tiny model: one short prompt, the rest empty prompts."""
    g = torch.Generator().manual_seed(seed)
    size = 64 if options["image_size"] == 64 else 128
    ctx = options["text_ctx"]
    mask = torch.zeros(batch, ctx, dtype=torch.bool)
    mask[0, :5] = True
    tokens = torch.where(mask, torch.randint(0, 50256, (batch, ctx), generator=g), 50256)
    inputs = {"x": torch.randn(batch, 3, size, size, generator=g),
              "timesteps": torch.randint(0, 1000, (batch,), generator=g),
              "tokens": tokens, "mask": mask}
    if options["super_res"]:
        inputs["low_res"] = torch.randn(batch, 3, 64, 64, generator=g).clamp(-1, 1)
    if options["inpaint"]:
        inputs["inpaint_image"] = torch.randn(batch, 3, size, size, generator=g).clamp(-1, 1)
        inputs["inpaint_mask"] = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    return inputs


@pytest.fixture(scope="module", params=MODEL_NAMES)
def tiny(request) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    return request.param, create_model(tiny_options(request.param)).eval()


def _key_list(name: str) -> list[tuple[str, list[int]]]:
    lines = (reference_dir() / "keys" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [(key, json.loads(shape)) for key, shape in (line.split("\t") for line in lines)]


# --- options ---------------------------------------------------------------------------

def test_full_options_are_fresh_copies_of_the_official_ones() -> None:
    official = json.loads((reference_dir() / "keys" / "options.json").read_text())
    for name in MODEL_NAMES:
        options = full_options(name)
        assert options == official[name]
        options["num_channels"] = 1
        assert full_options(name)["num_channels"] == 192
    assert clip_config() == official["clip"]


def test_unknown_model_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown GLIDE model"):
        full_options("base-256")


def test_tiny_options_keep_the_architecture() -> None:
    keep = ("image_size", "attention_resolutions", "resblock_updown", "use_scale_shift_norm",
            "xf_padding", "xf_final_ln", "text_ctx", "noise_schedule", "inpaint", "super_res")
    for name in MODEL_NAMES:
        full, tiny = full_options(name), tiny_options(name)
        assert tiny.keys() == full.keys()
        assert {k: tiny[k] for k in keep} == {k: full[k] for k in keep}
        assert len(parse_channel_mult(tiny)) == len(parse_channel_mult(full))
    small = clip_config(tiny=True)
    assert small.keys() == clip_config().keys()
    assert (small["image_size"], small["patch_size"], small["n_vocab"]) == (64, 4, 65536)
    assert small["n_embd"] < clip_config()["n_embd"]


def test_channel_mult_and_attention_parsing() -> None:
    assert parse_channel_mult(full_options("base")) == (1, 2, 3, 4)
    assert parse_channel_mult(full_options("upsample")) == (1, 1, 2, 2, 4, 4)
    assert parse_channel_mult({"image_size": 64, "channel_mult": "1,2,2,4"}) == (1, 2, 2, 4)
    with pytest.raises(ValueError):
        parse_channel_mult({"image_size": 256, "channel_mult": "1,2,2,4"})
    assert parse_attention_resolutions(full_options("base")) == (2, 4, 8)
    assert parse_attention_resolutions(full_options("upsample")) == (8, 16, 32)


# --- shared layers ---------------------------------------------------------------------

def test_timestep_embedding_is_cos_then_sin() -> None:
    emb = timestep_embedding(torch.tensor([0, 7]), 8)
    assert emb.dtype == torch.float32 and emb.shape == (2, 8)
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.tensor([10000 ** (-j / 4) for j in range(4)])
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(7 * freqs), torch.sin(7 * freqs)]))
    assert timestep_embedding(torch.tensor([3]), 5)[0, -1] == 0


def test_attention_matches_the_reference_formula() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = split_heads(torch.randn(2, 10, 3 * 2 * 8, generator=g), heads=2, parts=3)
    s = 8 ** -0.25
    weight = torch.softmax(torch.einsum("bhtc,bhsc->bhts", q * s, k * s), dim=-1)
    torch.testing.assert_close(attention(q, k, v), weight @ v, atol=1e-6, rtol=1e-5)


def test_split_heads_is_head_major() -> None:
    # Head h owns channels [3hc, 3(h+1)c) as [q | k | v].
    x = torch.arange(12.0).view(1, 1, 12)
    q, k, v = split_heads(x, heads=2, parts=3)
    assert q.flatten().tolist() == [0, 1, 6, 7]
    assert k.flatten().tolist() == [2, 3, 8, 9]
    assert v.flatten().tolist() == [4, 5, 10, 11]


def test_group_norm_runs_in_float32_in_a_bf16_module() -> None:
    norm = GroupNorm32(64)
    x = torch.randn(2, 64, 4, 4) * 100 + 1000
    expected = norm(x)
    out = norm.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.float32
    # Only the bf16 rounding of the input remains (0.4% of 1000 against a std of 100).
    torch.testing.assert_close(out, expected, atol=0.1, rtol=0)


# --- construction and checkpoints ------------------------------------------------------

def test_meta_construction_allocates_nothing() -> None:
    with torch.device("meta"):
        model = create_model(full_options("upsample-inpaint"))
    assert all(p.is_meta for p in model.parameters())
    assert list(model.buffers()) == []


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_full_size_checkpoint_round_trip(name: str, tmp_path) -> None:
    """A random full-size state dict saved to disk loads strictly into a meta-built model."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in create_model(full_options(name)).state_dict().items()}
    assert [(k, list(s)) for k, s in shapes.items()] == _key_list(name)
    g = torch.Generator().manual_seed(0)
    path = tmp_path / f"{name}.pt"
    torch.save({k: torch.randn(s, generator=g) for k, s in shapes.items()}, path)

    saved = torch.load(path, weights_only=True, mmap=True)
    with torch.device("meta"):
        model = create_model(full_options(name))
    model.load_state_dict(saved, strict=True, assign=True)
    assert not any(p.is_meta for p in model.parameters())
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in shapes)
    assert sum(p.numel() for p in model.parameters()) > 3.8e8
    del model, loaded, saved
    path.unlink()  # 1.6 GB: pytest keeps the tmp dirs of recent runs


def test_missing_or_extra_keys_are_refused() -> None:
    state = create_model(tiny_options("base")).state_dict()
    missing = {k: v for k, v in state.items() if k != "padding_embedding"}
    with pytest.raises(RuntimeError, match="Missing key.*padding_embedding"):
        create_model(tiny_options("base")).load_state_dict(missing, strict=True)
    extra = dict(state, **{"label_emb.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="Unexpected key.*label_emb"):
        create_model(tiny_options("base")).load_state_dict(extra, strict=True)


# --- forward ---------------------------------------------------------------------------

def test_tiny_forward_shape_and_dtype(tiny) -> None:
    _, model = tiny
    inputs = _inputs(model.options)
    with torch.no_grad():
        out = model(**inputs)
    assert out.dtype == torch.float32
    assert out.shape == (2, 6, *inputs["x"].shape[-2:])
    assert torch.isfinite(out).all()


def test_precomputed_text_equals_tokens_path(tiny) -> None:
    _, model = tiny
    inputs = _inputs(model.options)
    with torch.no_grad():
        direct = model(**inputs)
        text = model.encode_text(inputs.pop("tokens"), inputs.pop("mask"))
        cached = model(**inputs, text=text)
    assert torch.equal(direct, cached)


def test_text_changes_the_output_but_padded_tokens_do_not(tiny) -> None:
    _, model = tiny
    inputs = _inputs(model.options)
    with torch.no_grad():
        out = model(**inputs)
        other_padding = dict(inputs, tokens=torch.where(inputs["mask"], inputs["tokens"], 7))
        assert torch.equal(model(**other_padding), out)
        other_prompt = dict(inputs, tokens=inputs["tokens"].roll(1, dims=0))
        assert not torch.allclose(model(**other_prompt)[0], out[0])


def test_each_extra_input_reaches_the_output(tiny) -> None:
    _, model = tiny
    inputs = _inputs(model.options)
    extras = [k for k in ("low_res", "inpaint_image", "inpaint_mask") if k in inputs]
    assert len(extras) == model.super_res + 2 * model.inpaint
    with torch.no_grad():
        out = model(**inputs)
        for key in extras:
            changed = dict(inputs, **{key: inputs[key].flip(-1)})
            assert not torch.allclose(model(**changed), out), key


def test_inpaint_defaults_to_nothing_known() -> None:
    torch.manual_seed(0)
    model = create_model(tiny_options("base-inpaint")).eval()
    inputs = _inputs(model.options)
    with torch.no_grad():
        explicit = model(**dict(inputs, inpaint_mask=torch.zeros_like(inputs["inpaint_mask"])))
        inputs.pop("inpaint_image"), inputs.pop("inpaint_mask")
        assert torch.equal(model(**inputs), explicit)


def test_upsampler_resizes_low_res_to_the_input_size() -> None:
    torch.manual_seed(0)
    model = create_model(tiny_options("upsample")).eval()
    inputs = _inputs(model.options)
    with torch.no_grad():
        for size in (64, 96):
            x = inputs["x"][..., :size, :size]
            assert model(**dict(inputs, x=x)).shape[-2:] == (size, size)
    with pytest.raises(ValueError, match="low_res"):
        model(**dict(inputs, low_res=None))


def test_bf16_model_stays_close_to_fp32(tiny) -> None:
    name, model = tiny
    inputs = _inputs(model.options)
    low = create_model(tiny_options(name)).eval()
    low.load_state_dict(model.state_dict())
    low.to(torch.bfloat16)
    with torch.no_grad():
        expected, out = model(**inputs), low(**inputs)
    assert out.dtype == torch.float32
    scale = expected.abs().max().item()
    assert (out - expected).abs().max().item() <= BF16_REL_TOL * scale
    assert math.isfinite(scale) and scale > 0.1
