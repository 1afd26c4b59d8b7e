"""Producer for clip/*.pt: the noise-aware CLIP encoders and guidance gradient.

Files are recognised by what they hold, not by name: an image-encoder file has
`inputs.images`, a text-encoder file has `prompts` and `inputs.tokens`, a cond-fn file has
`cases` (and names the two encoder files it uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from glide_ui.glide.clip import ImageEncoder, NoiseAwareClip, TextEncoder, encode_prompts, normalize


def produce(rel: str, expected: dict[str, Any], ref_dir: Path) -> dict[str, Any]:
    if "cases" in expected:
        return _cond_fn(expected, ref_dir)
    if "images" in expected.get("inputs", {}):
        return _image_encoder_outputs(expected)
    if "prompts" in expected and "tokens" in expected.get("inputs", {}):
        return _text_encoder_outputs(expected)
    raise ValueError(f"{rel}: not a noise-aware CLIP fixture this producer knows")


def _image_encoder(data: dict[str, Any]) -> ImageEncoder:
    encoder = ImageEncoder(data["config"])
    encoder.load_state_dict(data["state_dict"])
    return encoder.eval()


def _text_encoder(data: dict[str, Any]) -> TextEncoder:
    encoder = TextEncoder(data["config"])
    encoder.load_state_dict(data["state_dict"])
    return encoder.eval()


def _image_encoder_outputs(data: dict[str, Any]) -> dict[str, Any]:
    encoder = _image_encoder(data)
    images, timesteps = data["inputs"]["images"], data["inputs"]["timesteps"]
    output = encoder((images + 1) * 127.5, timesteps)
    return {"n_state": encoder.n_state,
            "outputs": {"encoder_output": output, "image_embeddings": normalize(output)}}


def _text_encoder_outputs(data: dict[str, Any]) -> dict[str, Any]:
    encoder = _text_encoder(data)
    tokens, lens = encode_prompts(data["prompts"])
    output = encoder(tokens, lens)
    return {"n_state": encoder.n_state,
            "inputs": {"tokens": tokens, "lens": lens},
            "outputs": {"encoder_output": output, "text_embeddings": normalize(output)}}


def _load_named(name: str, ref_dir: Path) -> dict[str, Any]:
    for path in (ref_dir / name, ref_dir / "clip" / name):
        if path.is_file():
            return torch.load(path, weights_only=True)
    raise FileNotFoundError(f"{name} (relative to {ref_dir} or {ref_dir / 'clip'})")


def _cond_fn(data: dict[str, Any], ref_dir: Path) -> dict[str, Any]:
    clip = NoiseAwareClip(
        _image_encoder(_load_named(data["image_encoder_file"], ref_dir)),
        _text_encoder(_load_named(data["text_encoder_file"], ref_dir)),
        logit_scale=data["logit_scale"],
    )
    cases = []
    for case in data["cases"]:
        text_embedding = clip.prompt_embeddings([case["prompt"]])
        cases.append({
            "prompt": case["prompt"],
            "text_embedding": text_embedding,
            "image_embedding": clip.image_embeddings(case["x_t"], case["t"]),
            "gradient": clip.cond_gradient(case["x_t"], case["t"], text_embedding,
                                           case["grad_scale"]),
        })
    return {"cases": cases}
