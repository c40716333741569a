"""Shared pytest configuration.

- `pytest --device cuda` (default `cpu`) runs every cross-check and property test that takes the `device`
  fixture on that device; tests marked `@pytest.mark.cuda` need a CUDA device and skip without one.
- hypothesis runs without wall-clock deadlines (2 shared cores make them flaky) and derandomised.
- progress bars are silenced (`SU_NOTES_PROGRESS=0`).
- `one_thread` (module scope): one torch thread, for modules of tiny-tensor tests (`pytestmark = usefixtures`).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "su_notes",
    deadline=None,
    max_examples=60,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "su_notes"))
os.environ.setdefault("SU_NOTES_PROGRESS", "0")


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default="cpu",
        help="torch device for the cross-checks and property tests: cpu (default), cuda, cuda:1, mps",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped without one")
    try:
        dev = torch.device(config.getoption("--device"))
    except RuntimeError as e:
        raise pytest.UsageError(f"--device: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {dev} but torch.cuda.is_available() is False")
    config._su_device = dev


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    "The device given by `--device` (default CPU)."
    return pytestconfig._su_device


@pytest.fixture(scope="module")
def one_thread():
    "One intra-op torch thread for a module of tiny-tensor tests (extra threads only add overhead on a shared CPU)."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
