"""Fresh virtual environments that reuse the packages of the interpreter running the tests.

`python -m venv --system-site-packages` would not do: run from inside a virtual
environment it gives the base interpreter's packages, not the active environment's. These
environments have no packages (nor pip) of their own; a `.pth` file adds the given
site-packages folders, their own `.pth` files included, after the environment's
site-packages, where pip installs.
"""

from __future__ import annotations

import site
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def running_site_dirs() -> list[Path]:
    """The site-packages folders the running interpreter imports from, in its order: an
    active virtual environment's (and the base interpreter's where it includes them), the
    user's where enabled."""
    dirs = {*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE
                                       else [])}
    return [Path(entry) for entry in dict.fromkeys(sys.path) if entry in dirs]


def sharing_venv(folder: Path, site_dirs: Iterable[Path]) -> Path:
    """A virtual environment at `folder` that also imports from `site_dirs`, after its own
    (empty) site-packages; returns its python. `python -m pip` there is the pip found in
    `site_dirs`, and installs into the environment."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)],
                   check=True, timeout=300)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "shared-site-packages.pth").write_text("".join(
        f"import site; site.addsitedir({str(path)!r})\n" for path in site_dirs))
    return python
