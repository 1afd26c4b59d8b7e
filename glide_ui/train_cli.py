"""`glide-ui train`: fine-tune a GLIDE model on a folder of captioned pictures (or a CSV /
JSONL list, or WebDataset shards), with a progress bar, samples as PNG files and a CSV
log in the run folder."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from glide_ui.training.config import FITS, OPTIMIZERS, PRECISIONS, TrainConfig

    default = TrainConfig(data="", out="")
    add = parser.add_argument
    add("data", help="a folder of pictures with same-named .txt captions, a .csv/.jsonl "
        "of path,caption, or .tar WebDataset shards (a file or a folder of them)")
    add("--out", required=True, metavar="RUN_DIR",
        help="the run's folder: checkpoint, fine-tune file, log.csv, samples/")
    add("--model", default=default.model,
        help="the model to fine-tune: base, upsample, base-inpaint or upsample-inpaint")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--lora-rank", type=int, default=default.lora_rank, metavar="R",
                      help=f"LoRA rank (default {default.lora_rank})")
    kind.add_argument("--full", action="store_true", help="fine-tune every weight")
    add("--lora-alpha", type=float, default=None, metavar="A",
        help="LoRA alpha (default: the rank)")
    add("--lora-convs", action="store_true",
        help="LoRA on the residual blocks' 3x3 convolutions too (default: attention only)")
    add("--steps", type=int, default=default.steps, metavar="N",
        help=f"optimizer steps (default {default.steps})")
    add("--batch-size", type=int, default=default.batch_size, metavar="B",
        help=f"pictures per micro-batch (default {default.batch_size})")
    add("--accumulate", type=int, default=default.accumulate, metavar="K",
        help="micro-batches per optimizer step (default 1)")
    add("--lr", type=float, default=default.lr, help=f"learning rate (default {default.lr:g})")
    add("--weight-decay", type=float, default=default.weight_decay)
    add("--caption-dropout", type=float, default=default.caption_dropout, metavar="P",
        help="share of captions left empty, so guidance keeps working (default 0.2)")
    add("--precision", choices=PRECISIONS, default=default.precision,
        help="auto: bf16 where the hardware computes it, fp16 with loss scaling on other "
             "GPUs, else fp32")
    add("--optimizer", choices=OPTIMIZERS, default=default.optimizer,
        help="adamw8bit: bitsandbytes' 8-bit AdamW (CUDA)")
    add("--grad-checkpointing", action="store_true",
        help="recompute activations in the backward pass (less memory)")
    add("--checkpoint-every", type=int, default=default.checkpoint_every, metavar="N")
    add("--sample-every", type=int, default=default.sample_every, metavar="N",
        help="samples every N steps (default: before and after only)")
    add("--sample-prompt", action="append", dest="sample_prompts", metavar="TEXT",
        help="a prompt to sample (repeatable; default: the first two captions)")
    add("--sample-seed", action="append", dest="sample_seeds", type=int, metavar="S",
        help="a seed to sample each prompt with (repeatable; default 0)")
    add("--sample-steps", type=int, default=default.sample_steps, metavar="N")
    add("--seed", type=int, default=default.seed, help="the run's seed (same seed: same run)")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--fit", choices=FITS, default=default.fit,
        help="crop: the centre square; resize: squeeze the whole picture")
    add("--flip", action="store_true", help="mirror pictures at random")
    add("--device", help="cpu, cuda, cuda:1 (default: CUDA if present)")
    add("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Train; prints the fine-tune file's path. Raises GlideUIError for bad data/settings."""
    from glide_ui.training import TrainConfig, drive, fine_tune

    config = TrainConfig(
        data=args.data, out=str(args.out), model=args.model,
        lora_rank=0 if args.full else args.lora_rank, lora_alpha=args.lora_alpha,
        lora_convs=args.lora_convs, steps=args.steps, batch_size=args.batch_size,
        accumulate=args.accumulate, lr=args.lr, weight_decay=args.weight_decay,
        caption_dropout=args.caption_dropout, precision=args.precision,
        optimizer=args.optimizer, grad_checkpointing=args.grad_checkpointing,
        checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        sample_prompts=tuple(args.sample_prompts or ()),
        sample_seeds=tuple(args.sample_seeds or (0,)), sample_steps=args.sample_steps,
        seed=args.seed, resume=args.resume, fit=args.fit, flip=args.flip,
        models=args.models, checkpoints=args.checkpoints, device=args.device)
    try:
        finished = drive(fine_tune(config), progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"glide-ui: stopped; the last checkpoint in {args.out} stays (--resume "
              "continues the run).", file=sys.stderr)
        raise
    print(finished.finetune, flush=True)
    return 0
