"""HEVC CABAC layer (C++): unit tests in an optimised and a sanitizer build; generated tables vs the JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HEVC_DIR = REPO_ROOT / "arseg_ros" / "codec" / "hevc"
TEST_SOURCE = REPO_ROOT / "test" / "native" / "cabac_test.cpp"
SOURCES = [TEST_SOURCE, HEVC_DIR / "cabac.cpp", HEVC_DIR / "cabac_tables.cpp"]
GENERATOR = HEVC_DIR / "tools" / "gen_cabac_tables.py"
TABLES_JSON = REPO_ROOT.parent / "shared" / "data" / "hevc" / "cabac_tables.json"

BUILDS = {
    "optimised": ["-O2"],
    "sanitizers": ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
}

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
needs_json = pytest.mark.skipif(not TABLES_JSON.is_file(), reason="../shared/data/hevc/cabac_tables.json not present")


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and capture its output as text."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def build(out_dir: Path, flags: list[str]) -> Path:
    """Compile the CABAC unit test with ``flags``; fail the test with the compiler output if it does not build."""
    binary = out_dir / "cabac_test"
    cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", *flags, f"-I{HEVC_DIR}"]
    cmd += [str(s) for s in SOURCES] + ["-o", str(binary)]
    result = run(cmd, timeout=600)
    assert result.returncode == 0, f"build failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    return binary


@pytest.fixture(scope="module")
def optimised_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the unit test built with -O2, shared by the tests of this module."""
    return build(tmp_path_factory.mktemp("cabac_o2"), BUILDS["optimised"])


@needs_gxx
def test_cabac_unit_tests_optimised(optimised_binary: Path) -> None:
    """All C++ unit tests pass in the -O2 build."""
    result = run([str(optimised_binary)], timeout=300)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"


@needs_gxx
@pytest.mark.slow
def test_cabac_unit_tests_sanitizers(tmp_path: Path) -> None:
    """All C++ unit tests pass under AddressSanitizer and UndefinedBehaviorSanitizer."""
    binary = build(tmp_path, BUILDS["sanitizers"])
    result = run([str(binary)], timeout=600)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"


@needs_gxx
@needs_json
def test_compiled_tables_equal_json(optimised_binary: Path) -> None:
    """The committed C++ tables, as compiled, hold exactly the numbers of cabac_tables.json."""
    result = run([str(optimised_binary), "--dump-tables"], timeout=60)
    assert result.returncode == 0, result.stderr
    compiled = json.loads(result.stdout)
    expected = json.loads(TABLES_JSON.read_text(encoding="utf-8"))
    for key in ("range_tab_lps", "trans_idx_lps", "trans_idx_mps", "ctx_idx_map_sig_coeff_4x4"):
        assert compiled[key] == expected[key], key
    assert set(compiled["contexts"]) == set(expected["contexts"])
    next_first = 0
    for name, entry in compiled["contexts"].items():
        reference = expected["contexts"][name]
        assert entry["spec_table"] == reference["spec_table"], name
        assert entry["init_values"] == reference["init_values"], name
        assert entry["first"] == next_first, name
        assert entry["size"] == max(len(v) for v in reference["init_values"].values()), name
        next_first += entry["size"]
    assert compiled["num_contexts"] == next_first


@needs_json
def test_generated_files_up_to_date() -> None:
    """Running the generator on cabac_tables.json reproduces the committed cabac_tables.hpp/.cpp byte for byte."""
    result = run([sys.executable, str(GENERATOR), "--json", str(TABLES_JSON), "--check"], timeout=60)
    assert result.returncode == 0, f"regenerate with {GENERATOR.name}\n{result.stdout}\n{result.stderr}"


@needs_gxx
@pytest.mark.parametrize("source", ["cabac.cpp", "cabac_tables.cpp"])
def test_sources_compile_standalone(source: str, tmp_path: Path) -> None:
    """Each CABAC source compiles on its own with warnings as errors (as the extension build will compile it)."""
    cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c", str(HEVC_DIR / source)]
    result = run([*cmd, "-o", str(tmp_path / "out.o")], timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
