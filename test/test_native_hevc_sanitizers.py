"""HEVC header layers (C++) under AddressSanitizer + UndefinedBehaviorSanitizer.

``test/native/hevc_headers_driver.cpp`` runs the incremental parser (with tracing) over an Annex B file in
chunks. It is built from the header-layer sources only (bit reader, NAL, parameter sets, slice header,
POC/RPS/lists, stream parser) and run over generated streams, the shared HM stream, and seeded corruptions of
them: any sanitizer report or crash fails the test; parse errors are expected and reported by the driver.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hevc_streams import annexb_nal_units
from test_hevc_headers import handmade_stream

REPO_ROOT = Path(__file__).resolve().parent.parent
HEVC_DIR = REPO_ROOT / "arseg_ros" / "codec" / "hevc"
LAYERS = ["bitreader", "nal", "params", "slice_header", "refs", "parser"]
SOURCES = [REPO_ROOT / "test" / "native" / "hevc_headers_driver.cpp"] + [HEVC_DIR / f"{n}.cpp" for n in LAYERS]
FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined"]
FLAGS += ["-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("hevc_headers_asan") / "hevc_headers_driver"
    cmd = ["g++", *FLAGS, f"-I{REPO_ROOT}", *map(str, SOURCES), "-o", str(binary)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"build failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    return binary


def run_driver(driver: Path, path: Path, chunk: int = 0, *extra: str) -> str:
    result = subprocess.run(
        [str(driver), str(path), str(chunk), *extra], capture_output=True, text=True, timeout=300, check=False
    )
    report = f"{path.name} (chunk {chunk}): exit {result.returncode}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, report
    assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, report
    assert "done:" in result.stdout, report
    return result.stdout


def corruptions(data: bytes, seed: int, count: int) -> list[bytes]:
    """Seeded bit flips, truncated NAL units, dropped NAL units and byte-level cuts of ``data``."""
    rng = random.Random(seed)
    nals = annexb_nal_units(data)
    join = lambda units: b"".join(b"\x00\x00\x01" + n for n in units)  # noqa: E731
    out = []
    for trial in range(count):
        kind = trial % 4
        if kind == 0:
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 16)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            out.append(bytes(flipped))
        elif kind == 1:
            k = rng.randrange(len(nals))
            out.append(join([*nals[:k], nals[k][: rng.randrange(1, len(nals[k]) + 1)], *nals[k + 1 :]]))
        elif kind == 2:
            k = rng.randrange(len(nals))
            out.append(join([*nals[:k], *nals[k + 1 :]]))
        else:
            out.append(data[: rng.randrange(len(data))])
    return out


@needs_gxx
@pytest.mark.slow
def test_header_layers_under_sanitizers(
    driver: Path, hevc_matrix: dict[str, Path], tmp_path: Path, paris_stream_or_none: Path | None
) -> None:
    streams = [hevc_matrix[n] for n in ("bframes3", "slices2", "open_gop", "hrd_aud_repeat_headers", "main10")]
    if paris_stream_or_none is not None:
        streams.append(paris_stream_or_none)
    for index, path in enumerate(streams):
        whole = run_driver(driver, path)
        assert run_driver(driver, path, 4097) == whole
        data = path.read_bytes()
        if len(data) < 40_000:
            assert run_driver(driver, path, 1) == whole
        for k, variant in enumerate(corruptions(data[:120_000], seed=index, count=24)):
            corrupt = tmp_path / f"{path.stem}_corrupt{k}.h265"
            corrupt.write_bytes(variant)
            run_driver(driver, corrupt, chunk=[0, 1, 333][k % 3])


@needs_gxx
@pytest.mark.slow
def test_garbage_under_sanitizers(driver: Path, tmp_path: Path) -> None:
    rng = random.Random(99)
    for k in range(12):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
        if k % 2:
            payload = payload.replace(b"\x07", b"\x00\x00\x01")
        path = tmp_path / f"garbage{k}.h265"
        path.write_bytes(payload)
        run_driver(driver, path, chunk=k % 5)


@pytest.fixture(scope="module")
def paris_stream_or_none() -> Path | None:
    path = REPO_ROOT.parent / "shared" / "data" / "hevc" / "paris-ra-wpp.bin"
    return path if path.is_file() else None


def expected_layout(widths: list[int], heights: list[int], ctb_log2: int, min_tb_log2: int) -> dict[str, list[int]]:
    """6.5.1 / 6.5.2 for the given tile column widths and row heights (in CTBs), computed tile by tile."""
    pic_w, pic_h = sum(widths), sum(heights)
    col_bd = [sum(widths[:i]) for i in range(len(widths) + 1)]
    row_bd = [sum(heights[:j]) for j in range(len(heights) + 1)]
    ts_to_rs, tile_id = [], []
    for j in range(len(heights)):
        for i in range(len(widths)):
            for y in range(row_bd[j], row_bd[j + 1]):
                for x in range(col_bd[i], col_bd[i + 1]):
                    ts_to_rs.append(y * pic_w + x)
                    tile_id.append(j * len(widths) + i)
    rs_to_ts = [0] * len(ts_to_rs)
    for ts, rs in enumerate(ts_to_rs):
        rs_to_ts[rs] = ts
    shift = ctb_log2 - min_tb_log2
    zs = []
    for y in range(pic_h << shift):
        for x in range(pic_w << shift):
            inside = sum(((x >> b) & 1) << (2 * b) | ((y >> b) & 1) << (2 * b + 1) for b in range(shift))
            zs.append((rs_to_ts[(y >> shift) * pic_w + (x >> shift)] << (2 * shift)) + inside)
    return {
        "CtbAddrRsToTs": rs_to_ts,
        "CtbAddrTsToRs": ts_to_rs,
        "TileId": tile_id,
        "colBd": col_bd,
        "rowBd": row_bd,
        "MinTbAddrZs": zs,
    }


@needs_gxx
@pytest.mark.slow
def test_ctb_scan_tables_with_explicit_tiles(driver: Path, tmp_path: Path) -> None:
    """The hand-written stream: 8x4 CTBs of 16, tile columns 5 + 3 and rows 2 + 2, minimum TB 4."""
    path = tmp_path / "handmade.h265"
    path.write_bytes(handmade_stream())
    lines = [line.split() for line in run_driver(driver, path, 0, "layout").splitlines() if line.startswith("layout")]
    got = {line[1]: [int(v) for v in line[2:]] for line in lines}
    assert got.pop("min_tb_width") == [32]
    assert got == expected_layout([5, 3], [2, 2], ctb_log2=4, min_tb_log2=2)
