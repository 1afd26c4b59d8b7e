"""Producer for diffusion/*.pt: our diffusion math, guidance and samplers on the tiny models.

Recognised by content, not by file name. A fixture is either one section (it has `steps`)
or a dict of sections. A section with `final` is a DDIM trajectory (driven through the
`ddim` generator); one naming an `image_encoder_file` is a CLIP-guided ancestral step; one
whose steps carry `noise` is a list of ancestral steps; otherwise its steps are
p_mean_variance evaluations. `guidance_scale` means classifier-free guidance; `low_res`,
`inpaint_mask` are the upsampler / inpainting inputs.

Tokens, masks, timestep maps and original timesteps are recomputed and returned, so they
are compared exactly; x_t / noise / low_res / images are read from the fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from glide_ui.glide.clip import ImageEncoder, NoiseAwareClip, TextEncoder
from glide_ui.glide.diffusion import Diffusion, create_diffusion
from glide_ui.glide.guidance import (
    ModelFn,
    cfg_combine,
    cfg_model_fn,
    conditional_model_fn,
    inpaint_denoised_fn,
    inpaint_model_inputs,
    noise_aware_clip_cond_fn,
)
from glide_ui.glide.samplers import ancestral_step, ddim
from glide_ui.glide.tokenizer import get_glide_tokenizer
from glide_ui.glide.unet import create_model


def produce(rel: str, expected: dict[str, Any], ref_dir: Path) -> dict[str, Any]:
    if "steps" in expected:
        return _section(expected, ref_dir)
    return {name: _section(section, ref_dir) for name, section in expected.items()
            if isinstance(section, dict)}


def _section(section: dict[str, Any], ref_dir: Path) -> dict[str, Any]:
    setup = _Setup(section, ref_dir)
    if "final" in section:
        return setup.common() | _ddim_trajectory(setup, section)
    if "image_encoder_file" in section:
        return setup.common() | _clip_guided_step(setup, section, ref_dir)
    if all("noise" in step for step in section["steps"]):
        return setup.common() | {"steps": [_ancestral(setup, step) for step in section["steps"]]}
    return setup.common() | {"steps": [_p_mean_variance(setup, step)
                                       for step in section["steps"]]}


class _Setup:
    """The model, tokens, diffusion and model inputs a section describes."""

    def __init__(self, section: dict[str, Any], ref_dir: Path) -> None:
        data = torch.load(ref_dir / section["model_file"], weights_only=True)
        self.model = create_model(data["options"])
        self.model.load_state_dict(data["state_dict"], strict=True)
        self.model.eval()
        self.guidance_scale = section.get("guidance_scale")
        self.clip_denoised = section["clip_denoised"]
        self.diffusion: Diffusion = create_diffusion(
            data["options"]["diffusion_steps"], section["noise_schedule"], section["respacing"])
        prompts = list(section["prompts"])
        if self.guidance_scale is not None:
            prompts += [""] * len(prompts)  # CFG layout: [cond..., uncond...]
        self.tokens, self.mask = _tokenize(prompts, data["options"]["text_ctx"])
        self.kwargs: dict[str, Tensor | Any] = {
            "text": self.model.encode_text(self.tokens, self.mask)}
        if "low_res" in section:
            self.kwargs["low_res"] = section["low_res"]
        self.denoised_fn = None
        if "inpaint_mask" in section:
            image, mask = section["inpaint_image"], section["inpaint_mask"]
            copies = 1 if self.guidance_scale is None else 2
            self.kwargs |= inpaint_model_inputs(image, mask, copies)
            self.denoised_fn = inpaint_denoised_fn(image, mask)

    def common(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "mask": self.mask,
                "timestep_map": self.diffusion.timestep_map}

    def model_fn(self) -> ModelFn:
        """Our model function on B rows (CFG runs the UNet once on 2B rows)."""
        if self.guidance_scale is None:
            return conditional_model_fn(self.model, **self.kwargs)
        return cfg_model_fn(self.model, self.guidance_scale, **self.kwargs)

    def reference_layout_fn(self) -> ModelFn:
        """For x_t stored in the reference's 2B-row CFG layout (both halves equal)."""
        if self.guidance_scale is None:
            return self.model_fn()

        def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
            half, t_half = x_t[: len(x_t) // 2], t[: len(t) // 2]
            output = self.model(torch.cat([half, half]), torch.cat([t_half, t_half]),
                                **self.kwargs)
            return cfg_combine(output, self.guidance_scale)

        return model_fn

    def step_ids(self, i: int) -> dict[str, int]:
        return {"respaced_index": i, "original_timestep": self.diffusion.timestep(i)}


def _tokenize(prompts: list[str], text_ctx: int) -> tuple[Tensor, Tensor]:
    rows = [get_glide_tokenizer().tokenize(prompt, text_ctx) for prompt in prompts]
    return (torch.tensor([row.tokens for row in rows], dtype=torch.long),
            torch.tensor([row.mask for row in rows], dtype=torch.bool))


def _timesteps(setup: _Setup, x_t: Tensor, i: int) -> Tensor:
    return torch.full((len(x_t),), setup.diffusion.timestep(i), dtype=torch.long)


def _p_mean_variance(setup: _Setup, step: dict[str, Any]) -> dict[str, Any]:
    i, x_t = step["respaced_index"], step["x_t"]
    output = setup.reference_layout_fn()(x_t, _timesteps(setup, x_t, i))
    out = setup.diffusion.p_mean_variance(output, x_t, i, setup.clip_denoised)
    return setup.step_ids(i) | {"mean": out.mean, "variance": out.variance,
                                "log_variance": out.log_variance,
                                "pred_xstart": out.pred_xstart}


def _ancestral(setup: _Setup, step: dict[str, Any]) -> dict[str, Any]:
    i = step["respaced_index"]
    detail = ancestral_step(setup.diffusion, setup.reference_layout_fn(), step["x_t"], i,
                            step["noise"], clip_denoised=setup.clip_denoised)
    return setup.step_ids(i) | {"mean": detail.guided.mean,
                                "log_variance": detail.guided.log_variance,
                                "sample": detail.sample}


def _clip_guided_step(setup: _Setup, section: dict[str, Any],
                      ref_dir: Path) -> dict[str, Any]:
    clip = _noise_aware_clip(ref_dir / section["image_encoder_file"],
                             ref_dir / section["text_encoder_file"])
    text_embeddings = clip.prompt_embeddings(section["prompts"])
    cond_fn = noise_aware_clip_cond_fn(clip, text_embeddings, section["grad_scale"])
    i = section["respaced_index"]
    detail = ancestral_step(setup.diffusion, setup.model_fn(), section["x_t"], i,
                            section["noise"], clip_denoised=setup.clip_denoised,
                            cond_fn=cond_fn)
    out = detail.out
    return setup.step_ids(i) | {
        "mean": out.mean, "variance": out.variance, "log_variance": out.log_variance,
        "pred_xstart": out.pred_xstart, "gradient": detail.gradient,
        "guided_mean": detail.guided.mean, "sample": detail.sample}


def _noise_aware_clip(image_file: Path, text_file: Path) -> NoiseAwareClip:
    image_data = torch.load(image_file, weights_only=True)
    text_data = torch.load(text_file, weights_only=True)
    image_encoder = ImageEncoder(image_data["config"])
    image_encoder.load_state_dict(image_data["state_dict"], strict=True)
    text_encoder = TextEncoder(text_data["config"])
    text_encoder.load_state_dict(text_data["state_dict"], strict=True)
    clip = NoiseAwareClip(image_encoder, text_encoder, image_data["config"]["logit_scale"])
    return clip.eval()


def _ddim_trajectory(setup: _Setup, section: dict[str, Any]) -> dict[str, Any]:
    if "noise" in section:
        noise = section["noise"]
    else:  # the upsampler starts from randn * temperature
        noise = section["randn"] * section["upsample_temp"]
    sampler = ddim(setup.diffusion, setup.model_fn(), noise, eta=section["eta"],
                   clip_denoised=setup.clip_denoised, denoised_fn=setup.denoised_fn)
    ours = {step.respaced_index: step for step in sampler}
    steps = []
    for stored in section["steps"]:
        i = stored["respaced_index"]
        mine = ours.get(i)
        if mine is None:
            steps.append({})  # our schedule has no such step: reported as "not computed"
            continue
        step = {"respaced_index": i, "original_timestep": mine.timestep}
        if "sample" in stored:
            step["sample"] = mine.x_t
        if "pred_xstart" in stored:
            step["pred_xstart"] = mine.pred_x0
        steps.append(step)
    last = min(ours)
    return {"steps": steps, "final": ours[last].x_t}
