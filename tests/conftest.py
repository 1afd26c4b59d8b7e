import os
import random
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
DEFAULT_REFERENCE_DIR = TESTS_DIR / "fixtures" / "glide-reference"


def pytest_configure(config) -> None:
    """Nothing a test runs saves into the real per-user data folder: the default outputs
    folder (GLIDE_OUTPUTS, inherited by the apps tests start) is a temporary one."""
    config.outputs_dir = tempfile.mkdtemp(prefix="glide-ui-test-outputs-")
    os.environ["GLIDE_OUTPUTS"] = config.outputs_dir


def pytest_unconfigure(config) -> None:
    shutil.rmtree(getattr(config, "outputs_dir", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def _same_random_numbers_each_run(request) -> None:
    """Random numbers a test draws without a seed of its own are the same on every run and
    on every machine (a failure seen once is seen again), whatever ran before it."""
    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def reference_dir() -> Path:
    """The fixture directory under test: `GLIDE_REFERENCE_DIR`, else the committed copy."""
    return Path(os.environ.get("GLIDE_REFERENCE_DIR", DEFAULT_REFERENCE_DIR))


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    return reference_dir()


@pytest.fixture(scope="module")
def app():
    """`app.py --models tiny` on 127.0.0.1, one per test module (modules that need flags
    define their own)."""
    from app_server import running_app

    with running_app() as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright, headless (see page_helpers), one per test module."""
    from page_helpers import chromium

    with chromium() as browser:
        yield browser


@pytest.fixture
def page(app, browser):
    """A fresh page of the module's `app`, once it has rendered."""
    from page_helpers import open_page

    with open_page(browser, app.url) as page:
        yield page


@pytest.fixture(scope="module")
def manager():
    """A tiny-model manager (seeded random weights, no files), one per test module."""
    from glide_ui.models import ModelManager

    return ModelManager(model_set="tiny", device="cpu")


def pytest_terminal_summary(terminalreporter) -> None:
    from robust_cases import report

    report(terminalreporter.write_line)
