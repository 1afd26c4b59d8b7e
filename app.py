"""glide-ui: serve the GLIDE web app (also the Hugging Face Space entry point).

    python app.py                      # http://127.0.0.1:7860, official weights, loaded lazily
    python app.py --models tiny        # random tiny models: the whole app offline, for tests
    python app.py --outputs ~/glide    # keep results there (default: the per-user data folder)

The same as `glide-ui serve` once the package is installed (the flags are parsed by one
parser, in glide_ui/cli.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from glide_ui.cli import parse_serve_args as parse_args  # noqa: E402
from glide_ui.server import build, read_auth, serve, warn_if_public  # noqa: E402

__all__ = ["build", "main", "parse_args", "read_auth", "warn_if_public"]


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
