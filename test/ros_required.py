"""Importing ROS 2 pieces in tests: skip where ROS is absent, fail where it must be there.

With ``ARSEG_REQUIRE_ROS=1`` (``make test-ros`` and CI set it) a missing ROS module is an error, so the ROS
tests cannot silently skip there; elsewhere the test is skipped with the module's name and how to install it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

REQUIRED = os.environ.get("ARSEG_REQUIRE_ROS") == "1"


def import_or_skip(module: str) -> ModuleType:
    """Return the imported ``module``; skip the test when it is missing, unless ROS is required here."""
    if REQUIRED:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"ARSEG_REQUIRE_ROS=1 but {module} does not import ({exc}): run `make setup-ros`"
            ) from exc
    return pytest.importorskip(
        module, reason=f"{module} (ROS 2) is not installed here: `make setup-ros` installs ROS 2 Jazzy in the venv"
    )
