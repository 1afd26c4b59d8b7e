"""`python -m glide_ui ...` runs the `glide-ui` command."""

from glide_ui.cli import run

run()
