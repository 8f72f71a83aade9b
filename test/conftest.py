"""Shared pytest fixtures and collection rules.

Fixtures: the generated HEVC stream matrix and its FFmpeg header traces (see ``hevc_streams``). Collection:
only ``test_launch_*`` files are launch tests (see ``pytest_pycollect_makemodule``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hevc_streams import MATRIX, TracedNal, encode, shared_stream, trace_headers

PARIS_STREAM = "paris-ra-wpp.bin"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect every test file but ``test_launch_*`` as a plain pytest module.

    launch_testing's plugin imports each file while deciding whether it is a launch test, outside pytest's
    handling of import-time skips and errors, so one file's module-level skip would end collection of the whole
    folder. Only the launch tests go through it.
    """
    if module_path.name.startswith("test_launch_") or module_path.name == "__init__.py":
        return None
    return pytest.Module.from_parent(parent, path=module_path)


@pytest.fixture(scope="session")
def hevc_matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every ``MATRIX`` stream encoded once per session: ``{spec.name: path to the .h265 file}``."""
    directory = tmp_path_factory.mktemp("hevc_matrix")
    return {spec.name: encode(spec, directory) for spec in MATRIX}


@pytest.fixture(scope="session")
def hevc_matrix_traces(hevc_matrix: dict[str, Path]) -> dict[str, list[TracedNal]]:
    """``trace_headers`` of every ``MATRIX`` stream: ``{spec.name: traced NAL units}``."""
    return {name: trace_headers(path.read_bytes()) for name, path in hevc_matrix.items()}


@pytest.fixture(scope="session")
def paris_stream() -> Path:
    """Return the shared HM-encoded random-access stream; skip the test when the shared data folder is absent."""
    path = shared_stream(PARIS_STREAM)
    if path is None:
        pytest.skip(f"../shared/data/hevc/{PARIS_STREAM} not present")
    return path


@pytest.fixture(scope="session")
def paris_traces(paris_stream: Path) -> list[TracedNal]:
    """``trace_headers`` of the whole shared paris stream."""
    return trace_headers(paris_stream.read_bytes())
