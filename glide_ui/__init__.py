"""glide-ui: a browser app and Python API for OpenAI's GLIDE diffusion models."""

__version__ = "0.1.0"
