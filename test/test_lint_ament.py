"""The ament lint checks of a ROS 2 package (flake8, pep257, xmllint), as ``colcon test`` runs them.

flake8 reads its configuration from ``setup.cfg``, where the project's choices beside ROS 2's defaults are
listed with their reasons; pep257 uses ament's convention with the summary on the docstring's first line
(D212 instead of D213), as ruff checks it too. package.xml is validated against its format-3 XML schema;
where ``XML_CATALOG_FILES`` maps the schema's address to a local copy (``make setup-ros`` writes one) no
network is used.
"""

from pathlib import Path

import pytest
from ros_required import import_or_skip

ROOT = Path(__file__).resolve().parents[1]
PYTHON_PATHS = [str(ROOT / p) for p in ("arseg_ros", "launch", "test", "bench", "tools", "setup.py")]


@pytest.mark.linter
def test_flake8():
    main = import_or_skip("ament_flake8.main").main_with_errors
    rc, errors = main(argv=["--config", str(ROOT / "setup.cfg"), *PYTHON_PATHS])
    assert rc == 0, f"found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)


@pytest.mark.linter
def test_pep257():
    main = import_or_skip("ament_pep257.main").main
    assert main(argv=[*PYTHON_PATHS, "--add-ignore", "D213", "--add-select", "D212"]) == 0, "found docstring errors"


@pytest.mark.linter
def test_xmllint():
    main = import_or_skip("ament_xmllint.main").main
    assert main(argv=[str(ROOT / "package.xml"), *map(str, ROOT.glob("tools/ros/*/package.xml"))]) == 0, (
        "package.xml does not validate against its schema"
    )
