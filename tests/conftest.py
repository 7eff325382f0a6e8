"""Shared test settings: pinned threads (CPU results depend on the thread count), and one DVC
cache for the end-to-end copies that may share it (tests/repo_utils.py copy_repo)."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shared_dvc_cache(tmp_path_factory):
    """One DVC cache folder for this test session, shared by pytest-xdist's workers (their temp
    folders are children of the session's): a tiny stage run once is restored everywhere else.
    A new session starts empty, so no test reads outputs made by another version of the code."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = root / "shared-dvc-cache"
    cache.mkdir(exist_ok=True)
    return cache


def pytest_collection_modifyitems(items):
    """Modules with end-to-end (slow) tests first, each module's tests kept together and in order:
    under `make test` (pytest-xdist, --dist loadfile) the long modules then run side by side from
    the start and the many short unit modules fill both workers at the end, instead of a long
    module starting last on one worker while the other idles."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: order within each group kept
