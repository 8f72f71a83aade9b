"""ament lint checks, as `ros2 pkg create` sets them up; run where ament is installed.

The project formats with ruff (line length 120, double quotes), so flake8 gets the same line length and
leaves quote and import-order style to ruff; pep257 leaves docstring layout to the project's docstrings.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = [str(ROOT / "arseg_ros"), str(ROOT / "launch"), str(ROOT / "test")]


@pytest.mark.linter
def test_flake8():
    main = pytest.importorskip("ament_flake8.main", reason="ament_flake8 (ROS 2) is not installed").main_with_errors
    rc, errors = main(argv=["--config", str(ROOT / "test" / "ament_flake8.ini"), *PACKAGE_DIRS])
    assert rc == 0, f"found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)


@pytest.mark.linter
def test_pep257():
    main = pytest.importorskip("ament_pep257.main", reason="ament_pep257 (ROS 2) is not installed").main
    rc = main(argv=["--add-ignore", "D200,D205,D400,D401,D403,D415", *PACKAGE_DIRS])
    assert rc == 0, "found code style errors / warnings"


@pytest.mark.linter
def test_xmllint():
    main = pytest.importorskip("ament_xmllint.main", reason="ament_xmllint (ROS 2) is not installed").main
    assert main(argv=[str(ROOT / "package.xml")]) == 0, "package.xml does not validate"
