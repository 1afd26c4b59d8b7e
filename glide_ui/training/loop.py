"""The fine-tuning loop: a generator of events, like the pipelines, so every front (the
CLI's tqdm, Python, later the page) shows the same run. Closing it stops the run; the
last checkpoint stays on disk and `resume=True` continues from it.

A run folder holds `checkpoint.pt` (trainable weights, optimizer, step), the fine-tune
`<folder name>.safetensors` (written with every checkpoint), `log.csv` (step, loss, mse,
vb, lr, seconds) and `samples/` (PNG, `base-...` before training, `step-N-...` after).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from glide_ui import __version__
from glide_ui.errors import RequestError
from glide_ui.files import writable_folder, write_replacing
from glide_ui.finetunes import save_finetune
from glide_ui.glide.diffusion import create_diffusion
from glide_ui.images import save_png, tensor_to_pil
from glide_ui.models import ModelManager
from glide_ui.training import config as cfg
from glide_ui.training import precision as prec
from glide_ui.training.batches import Batch, Examples
from glide_ui.training.data import DataReport, scan
from glide_ui.training.lora import add_lora, load_trainable_state, lora_targets, trainable_state
from glide_ui.training.objective import hybrid_loss
from glide_ui.training.samples import SampleSpec, sample

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"
LOG_COLUMNS = ("step", "loss", "mse", "vb", "lr", "seconds")


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFound:
    report: DataReport


@dataclass(frozen=True)
class Started:
    step: int  # 0, or the step a resumed run continues from
    total: int
    trainable: int  # parameters trained
    precision: str


@dataclass(frozen=True)
class Step:
    step: int  # optimizer steps done
    total: int
    loss: float
    mse: float
    vb: float
    lr: float
    seconds: float  # since the (re)start
    eta: float  # seconds left at the average speed so far


@dataclass(frozen=True)
class Samples:
    step: int  # 0: the base model
    prompts: list[str]
    images: list[Any]  # PIL
    paths: list[Path]


@dataclass(frozen=True)
class Saved:
    step: int
    checkpoint: Path
    finetune: Path


@dataclass(frozen=True)
class Finished:
    step: int
    finetune: Path


# --- the run ----------------------------------------------------------------------------------


def fine_tune(config: cfg.TrainConfig, manager: ModelManager | None = None) -> Iterator[Any]:
    """Run `config`; yields DataFound, Started, Step (every step), Samples, Saved, Finished.
    Raises RequestError / DataError (GlideUIError) before any work for bad settings or data."""
    config = cfg.check(config)
    out = writable_folder(config.out, "--out")
    manager = manager or ModelManager(config.models, checkpoints_dir=config.checkpoints)
    options = manager.options(config.model)
    report = scan(config.data, options["image_size"])
    state = _resume_state(out, config)
    yield DataFound(report)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = prec.choose_precision(config.precision, device.type, prec.bf16_supported(device))
    run = _Run(config, manager, report, out, device, precision)
    if state is not None:
        run.restore(state)
    yield Started(run.step, config.steps, run.trainable_count(), precision.name)
    if run.step == 0:  # the base model (a LoRA with B = 0 is the base model)
        yield from run.samples("base")
    yield from run.steps()
    yield Finished(run.step, run.finetune_path)


def _resume_state(out: Path, config: cfg.TrainConfig) -> dict[str, Any] | None:
    path = out / CHECKPOINT
    if not path.exists():
        return None
    if not config.resume:
        raise RequestError(f"{out} already holds a run; pass resume to continue it, or "
                           "choose another output folder.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    theirs, ours = state["fingerprint"], config.fingerprint()
    differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    if differ:
        raise RequestError(f"The run in {out} was made with other settings "
                           f"({', '.join(differ)}); give the same ones to resume it.")
    if state["step"] >= config.steps:
        raise RequestError(f"The run in {out} has done {state['step']} steps already; "
                           f"ask for more than that to continue it.")
    return state


class _Run:
    def __init__(self, config: cfg.TrainConfig, manager: ModelManager, report: DataReport,
                 out: Path, device: torch.device, precision: prec.Precision) -> None:
        self.config, self.report, self.out = config, report, out
        self.device, self.precision = device, precision
        self.name = config.model
        self.base_checkpoint = manager.checkpoint_id(config.model)
        self.model = _trainable_model(manager, config).to(device)
        opts = self.model.options
        self.diffusion = create_diffusion(opts["diffusion_steps"], opts["noise_schedule"], "")
        self.examples = Examples(report.items, opts, config.seed, self.diffusion.num_timesteps,
                                 config.caption_dropout, config.fit, config.flip)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = prec.make_optimizer(self.parameters, config, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision.scaled)
        self.step = 0
        self.finetune_path = out / f"{out.resolve().name}.safetensors"

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters)

    # --- steps

    def steps(self) -> Iterator[Any]:
        config = self.config
        started, first = time.perf_counter(), self.step
        log = _Log(self.out / LOG, self.step)
        while self.step < config.steps:
            losses = self._optimizer_step()
            self.step += 1
            seconds = time.perf_counter() - started
            eta = seconds / (self.step - first) * (config.steps - self.step)
            lr = self.optimizer.param_groups[0]["lr"]
            log.write(self.step, *losses, lr, seconds)
            yield Step(self.step, config.steps, *losses, lr, seconds, eta)
            if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                yield self.save()
            if (config.sample_every and self.step % config.sample_every == 0) \
                    or self.step == config.steps:
                yield from self.samples(f"step-{self.step:06d}")

    def _optimizer_step(self) -> tuple[float, float, float]:
        config = self.config
        totals = torch.zeros(3, dtype=torch.float64)
        for micro in range(config.accumulate):
            first = (self.step * config.accumulate + micro) * config.batch_size
            batch = self.examples.batch(first, config.batch_size)
            # Dropout draws from the global generator: seeded per micro-batch, restored after.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed * 1_000_003 + first)
                losses = self._losses(batch)
                self.scaler.scale(losses.total / config.accumulate).backward()
            totals += torch.stack([losses.total, losses.mse.mean(), losses.vb.mean()]
                                  ).detach().double().cpu()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        mean = totals / config.accumulate
        return float(mean[0]), float(mean[1]), float(mean[2])

    def _losses(self, batch: Batch):
        device = self.device
        x_start, noise = batch.x_start.to(device), batch.noise.to(device)
        x_t = torch.cat([self.diffusion.q_sample(x_start[j:j + 1], i, noise[j:j + 1])
                         for j, i in enumerate(batch.indices)])
        timesteps = self.diffusion.timestep_map[batch.indices].to(device)
        extra = {key: value.to(device) for key, value in batch.extra.items()}
        autocast = (torch.autocast(device.type, dtype=self.precision.autocast)
                    if self.precision.autocast is not None else nullcontext())
        with autocast:
            output = self.model(x_t, timesteps, tokens=batch.tokens.to(device),
                                mask=batch.mask.to(device), **extra)
        return hybrid_loss(self.diffusion, output, x_start, x_t, noise, batch.indices)

    # --- saving

    def save(self) -> Saved:
        """Write the checkpoint and the fine-tune file of the current step."""
        config = self.config
        state = {"step": self.step, "fingerprint": config.fingerprint(),
                 "trainable": _cpu(trainable_state(self.model, config.lora)),
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        checkpoint_path = write_replacing(self.out / CHECKPOINT, buffer.getvalue())
        recipe = {**config.recipe(), "steps_done": self.step, "glide_ui": __version__,
                  "pictures": len(self.report.items), "precision": self.precision.name}
        save_finetune(self.finetune_path, state["trainable"], model=self.name,
                      kind="lora" if config.lora else "full", options=self.model.options,
                      recipe=recipe, rank=config.lora_rank, alpha=config.alpha,
                      base_checkpoint=self.base_checkpoint)
        return Saved(self.step, checkpoint_path, self.finetune_path)

    def restore(self, state: dict[str, Any]) -> None:
        load_trainable_state(self.model, state["trainable"], self.config.lora)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]

    # --- samples

    def sample_specs(self) -> list[SampleSpec]:
        items = self.report.items
        prompts = self.config.sample_prompts or tuple(dict.fromkeys(
            item.caption for item in items[:2]))
        return [SampleSpec(prompt, seed, self.examples.picture(k % len(items)))
                for k, prompt in enumerate(prompts) for seed in self.config.sample_seeds]

    def samples(self, stem: str) -> Iterator[Samples]:
        specs = self.sample_specs()
        if not specs:
            return
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        images, paths = [], []
        for k, spec in enumerate(specs):
            x = sample(self.model, spec, self.config.sample_steps, self.config.guidance_scale)
            image = tensor_to_pil(x.cpu())[0]
            images.append(image)
            paths.append(save_png(image, folder / f"{stem}-{k}-seed{spec.seed}.png"))
        yield Samples(self.step, [spec.prompt for spec in specs], images, paths)


def _trainable_model(manager: ModelManager, config: cfg.TrainConfig) -> nn.Module:
    model = manager.training_copy(config.model)
    if config.lora:
        model.requires_grad_(False)
        add_lora(model, config.lora_rank, config.alpha, lora_targets(config.lora_convs),
                 config.seed)
    else:
        model.requires_grad_(True)
    if config.grad_checkpointing:
        enable_checkpointing(model)
    return model


def enable_checkpointing(model: nn.Module) -> None:
    """Recompute each UNet block's activations in the backward pass instead of keeping
    them (less memory, about a third more compute)."""
    for block in [*model.input_blocks, model.middle_block, *model.output_blocks]:
        block.forward = partial(checkpoint, block.forward, use_reentrant=False)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


class _Log:
    """log.csv of a run: a resumed run keeps the rows up to its checkpoint."""

    def __init__(self, path: Path, step: int) -> None:
        rows = []
        if step and path.exists():
            with open(path, newline="") as stream:
                rows = [row for row in csv.reader(stream)][1:]
            rows = [row for row in rows if row and int(row[0]) <= step]
        self.path = path
        with open(path, "w", newline="") as stream:
            csv.writer(stream).writerows([LOG_COLUMNS, *rows])

    def write(self, *values: float) -> None:
        with open(self.path, "a", newline="") as stream:
            csv.writer(stream).writerow([f"{v:.6g}" if isinstance(v, float) else v
                                         for v in values])
