"""Building and running the native test drivers of ``test/native/`` (shared by the HEVC test modules)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HEVC_DIR = REPO_ROOT / "arseg_ros" / "codec" / "hevc"

BUILDS = {
    "optimised": ["-O2"],
    "sanitizers": ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
}

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and capture its output as text."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def build_driver(source: Path, out_dir: Path, flags: list[str]) -> Path:
    """Compile ``source`` with every parser layer (not the Python bindings) and ``flags``.

    Fail the test with the compiler output if it does not build.
    """
    binary = out_dir / source.stem
    sources = sorted(p for p in HEVC_DIR.glob("*.cpp") if p.name != "bindings.cpp")
    cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", *flags, f"-I{REPO_ROOT}"]
    cmd += [str(s) for s in [*sources, source]] + ["-o", str(binary)]
    result = run(cmd, timeout=900)
    assert result.returncode == 0, f"build failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    return binary


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, float]:
    """Return the ``key=value`` counts of a driver's ``summary:`` line; fail the test on an error or a crash."""
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("summary: ")]
    assert len(lines) == 1, result.stdout
    return {key: float(value) for key, value in (item.split("=") for item in lines[0].split()[1:])}


def corrupt(path: Path, out: Path, seed: int) -> Path:
    """Write to ``out`` a copy of ``path`` with a few bytes flipped in the middle of one slice NAL unit's data.

    The flipped bytes are seeded by ``seed``.
    """
    data = bytearray(path.read_bytes())
    starts = [i + 3 for i in range(len(data) - 3) if data[i : i + 3] == b"\x00\x00\x01"]
    ends = [*(s - 3 for s in starts[1:]), len(data)]
    slices = [(s, e) for s, e in zip(starts, ends, strict=True) if ((data[s] >> 1) & 0x3F) < 32 and e - s > 64]
    rng = random.Random(seed)
    begin, end = rng.choice(slices)
    middle = (begin + end) // 2
    for _ in range(rng.randint(1, 4)):
        data[rng.randint(middle - 16, middle + 16)] ^= rng.randint(1, 255)
    out.write_bytes(bytes(data))
    return out
