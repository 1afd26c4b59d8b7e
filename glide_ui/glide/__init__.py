"""GLIDE itself, pure computation: networks, noise-aware CLIP, tokenizers, diffusion, samplers.

No files, no network, no UI: this package imports only torch, numpy and the data packages
of the tokenizers.
"""
