"""The examples of a training step, each drawn from its own seeded generator.

Example p of a run (p counts examples over the whole run, p = step * global batch + k)
takes picture `order(epoch)[p % n]` (a fresh permutation per epoch) and draws its
timestep, noise, caption dropout, flip and inpainting mask from a generator seeded with
(seed, p). So what a step sees depends only on the seed and the step number: a resumed
run sees what the uninterrupted one saw, and splitting a batch over workers changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from glide_ui.glide.tokenizer import get_glide_tokenizer
from glide_ui.training.data import Item, prepare

LOW_RES = 64  # the upsamplers' input size


@dataclass
class Batch:
    x_start: Tensor  # [B, 3, S, S]
    noise: Tensor
    indices: list[int]  # respaced timestep index per example
    tokens: Tensor
    mask: Tensor
    extra: dict[str, Tensor]  # low_res / inpaint_image, inpaint_mask


def _generator(seed: int, number: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed & 0xFFFFFFFF) << 32) | (number & 0xFFFFFFFF))


class Examples:
    """Draws the examples of a run over `items` for a model of `options`."""

    def __init__(self, items: list[Item], options: dict, seed: int, timesteps: int,
                 caption_dropout: float, fit: str, flip: bool) -> None:
        self.items = items
        self.size = options["image_size"]
        self.text_ctx = options["text_ctx"]
        self.super_res = bool(options["super_res"])
        self.inpaint = bool(options["inpaint"])
        self.seed, self.timesteps = seed, timesteps
        self.caption_dropout, self.fit, self.flip = caption_dropout, fit, flip
        self._orders: dict[int, list[int]] = {}
        self._pictures: dict[int, Tensor] = {}

    def picture(self, index: int) -> Tensor:
        """Item `index` prepared (kept in memory once read: a few sets fit easily)."""
        if index not in self._pictures:
            self._pictures[index] = prepare(self.items[index], self.size, self.fit)
        return self._pictures[index]

    def _item_of(self, number: int) -> int:
        epoch, place = divmod(number, len(self.items))
        if epoch not in self._orders:
            order = torch.randperm(len(self.items), generator=_generator(self.seed, ~epoch))
            self._orders = {epoch: order.tolist()}
        return self._orders[epoch][place]

    def batch(self, first: int, count: int) -> Batch:
        """Examples first .. first + count - 1 of the run."""
        rows = [self._example(number) for number in range(first, first + count)]
        tokenizer = get_glide_tokenizer()
        prompts = [tokenizer.tokenize(caption, self.text_ctx) for _, _, _, caption, _ in rows]
        x_start = torch.stack([row[0] for row in rows])
        extra: dict[str, Tensor] = {}
        if self.super_res:
            extra["low_res"] = F.interpolate(x_start, size=(LOW_RES, LOW_RES), mode="area")
        if self.inpaint:
            extra["inpaint_image"] = x_start
            extra["inpaint_mask"] = torch.stack([row[4] for row in rows])
        return Batch(x_start, torch.stack([row[1] for row in rows]), [row[2] for row in rows],
                     torch.tensor([p.tokens for p in prompts], dtype=torch.long),
                     torch.tensor([p.mask for p in prompts], dtype=torch.bool), extra)

    def _example(self, number: int) -> tuple[Tensor, Tensor, int, str, Tensor | None]:
        index = self._item_of(number)
        g = _generator(self.seed, number)
        i = int(torch.randint(self.timesteps, (), generator=g))
        dropped = float(torch.rand((), generator=g)) < self.caption_dropout
        flipped = self.flip and float(torch.rand((), generator=g)) < 0.5
        x = self.picture(index)
        if flipped:
            x = x.flip(-1)
        noise = torch.randn(x.shape, generator=g)
        mask = random_box_mask(self.size, g) if self.inpaint else None
        return x, noise, i, "" if dropped else self.items[index].caption, mask


def random_box_mask(size: int, g: torch.Generator) -> Tensor:
    """[1, S, S], 1 where the picture is known: a box of 1/4 to 3/4 of each side erased."""
    mask = torch.ones(1, size, size)
    h, w = (int(torch.randint(size // 4, 3 * size // 4 + 1, (), generator=g)) for _ in "hw")
    top = int(torch.randint(size - h + 1, (), generator=g))
    left = int(torch.randint(size - w + 1, (), generator=g))
    mask[:, top:top + h, left:left + w] = 0
    return mask
