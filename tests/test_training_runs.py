"""Fine-tuning runs on the tiny models: a stopped and resumed run makes the same weights
as an uninterrupted one, checkpointing activations changes nothing, and a tiny base
fine-tuned on solid squares learns their colours."""

from __future__ import annotations

from contextlib import closing

import pytest
import torch
from training_data import COLOURS, caption, colour_folder

from glide_ui.errors import RequestError
from glide_ui.finetunes import apply_finetune, load_finetune
from glide_ui.models import ModelManager
from glide_ui.training import Finished, Saved, Step, TrainConfig, fine_tune, train
from glide_ui.training.samples import SampleSpec, sample

QUICK = {"models": "tiny", "batch_size": 2, "lora_rank": 2, "lr": 1e-2,
         "precision": "fp32", "sample_seeds": (), "checkpoint_every": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folder(tmp_path_factory.mktemp("colours"))


def test_a_stopped_run_resumes_to_the_same_weights(data, tmp_path):
    whole = load_finetune(train(data, tmp_path / "whole", steps=4, progress=False, **QUICK))
    config = TrainConfig(str(data), str(tmp_path / "parts"), steps=4, **QUICK)
    events = fine_tune(config)
    with closing(events):  # Stop (closing the run) after step 3: checkpoint 2 stays
        for event in events:
            if isinstance(event, Step) and event.step == 3:
                break
    assert not any(isinstance(e, Finished) for e in events)
    with pytest.raises(RequestError, match="already holds a run"):
        list(fine_tune(config))
    with pytest.raises(RequestError, match=r"other settings \(lr\)"):
        list(fine_tune(TrainConfig(**{**config.__dict__, "resume": True, "lr": 1e-3})))
    resumed = list(fine_tune(TrainConfig(**{**config.__dict__, "resume": True})))
    saved = [e.step for e in resumed if isinstance(e, Saved)]
    assert saved == [4] and [e.step for e in resumed if isinstance(e, Step)] == [3, 4]
    parts = load_finetune(tmp_path / "parts" / "parts.safetensors")
    assert whole.tensors.keys() == parts.tensors.keys()
    for key, value in whole.tensors.items():
        assert torch.equal(value, parts.tensors[key]), key  # bit for bit
    assert any(v.abs().max() > 0 for k, v in whole.tensors.items() if "lora_B" in k)
    log = (tmp_path / "parts" / "log.csv").read_text().splitlines()
    assert log[0] == "step,loss,mse,vb,lr,seconds" and [r.split(",")[0] for r in log[1:]] == \
        ["1", "2", "3", "4"]  # the stopped run's step 3 replaced by the resumed one's


def test_gradient_checkpointing_gives_the_same_run(data, tmp_path):
    plain = train(data, tmp_path / "plain", steps=1, progress=False, **QUICK)
    saved = train(data, tmp_path / "saved", steps=1, grad_checkpointing=True,
                  progress=False, **QUICK)
    a, b = load_finetune(plain).tensors, load_finetune(saved).tensors
    assert all(torch.equal(a[key], b[key]) for key in a)


def _mean_colour(model, seed: int) -> torch.Tensor:
    x = sample(model, SampleSpec(caption("red"), seed, None), steps=5, guidance_scale=3.0)
    return ((x + 1) * 127.5).clamp(0, 255).mean((0, 2, 3))


def test_a_finetuned_tiny_base_learns_the_colour_of_its_pictures(tmp_path):
    """Full fine-tuning of the tiny base on a red square (30 steps). Sampling its caption
    (5 DDIM steps, seeds 0 and 1) must then give a mean colour at least 20 levels (RGB
    distance) closer to red than the base model's samples, and nearer red than green or
    blue. The base model's samples are grey (about 127, 113, 106: 146 from red); random
    drift cannot pass the second test, which asks the move to be towards red and not
    towards the other colours, and the draws are seeded, so the test is deterministic."""
    data = tmp_path / "data"
    data.mkdir()
    for suffix in ("png", "txt"):
        source = colour_folder(tmp_path / "all") / f"red.{suffix}"
        (data / source.name).write_bytes(source.read_bytes())
    events = []
    path = train(data, tmp_path / "run", models="tiny", steps=30, batch_size=2, lr=1e-2,
                 lora_rank=0, precision="fp32", sample_seeds=(), device="cpu",
                 checkpoint_every=1000, progress=False, on_event=events.append)
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5  # the loss falls
    manager = ModelManager("tiny", device="cpu", dtype="fp32")
    base, tuned = manager.training_copy("base").eval(), manager.training_copy("base").eval()
    apply_finetune(tuned, load_finetune(path))
    targets = {name: torch.tensor(rgb, dtype=torch.float32) for name, rgb in COLOURS.items()}
    for seed in (0, 1):
        before = (_mean_colour(base, seed) - targets["red"]).norm()
        after_colour = _mean_colour(tuned, seed)
        after = (after_colour - targets["red"]).norm()
        others = min((after_colour - targets[n]).norm() for n in ("green", "blue"))
        assert after < before - 20, (seed, float(before), float(after))
        assert after < others, (seed, float(after), float(others))


@pytest.mark.parametrize("model", ["upsample", "base-inpaint", "upsample-inpaint"])
def test_the_upsamplers_and_inpainting_models_train_and_sample(data, tmp_path, model):
    """One LoRA step on each other model (their extra inputs: the 64 px reduction, a
    random erased box) and a two-step sample from the first picture."""
    big = colour_folder(tmp_path / "big", size=256) if "upsample" in model else data
    events = []
    path = train(big, tmp_path / "run", model=model, steps=1, progress=False,
                 on_event=events.append, **{**QUICK, "batch_size": 1, "sample_seeds": (0,),
                                            "sample_steps": 2})
    finetune = load_finetune(path)
    assert finetune.model == model and finetune.kind == "lora"
    size = 256 if "upsample" in model else 64
    samples = [e for e in events if hasattr(e, "images")]
    assert [s.step for s in samples] == [0, 1]
    assert all(image.size == (size, size) for s in samples for image in s.images)


def test_fp16_with_loss_scaling_runs(data, tmp_path):
    path = train(data, tmp_path / "run", steps=1, progress=False,
                 **{**QUICK, "precision": "fp16"})
    assert load_finetune(path).recipe["precision"] == "fp16"
