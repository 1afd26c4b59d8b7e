"""`python -m glide_ui.cli`: the `glide-ui` command."""

from glide_ui.cli import run

run()
