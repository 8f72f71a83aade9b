"""HEVC luma motion vector derivation (C++, ITU-T H.265 8.5.3.2): exact agreement with libde265, block by block.

The driver (``test/native/motion_driver.cpp``) is built from every ``arseg_ros/codec/hevc/*.cpp`` except the Python
bindings, once with ``-O2`` and once with AddressSanitizer + UndefinedBehaviorSanitizer. It runs the header layers,
the slice-data layer and the motion derivation (``motion_derivation.hpp``) over a whole Annex B file; with
``--dump`` it writes per picture the predFlagLX, mvLX and the POC of RefPicListX[refIdxLX] of every 4x4 luma block,
which must equal what libde265 derived (``test/oracle``) for every block of every picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hevc_streams import MATRIX, StreamSpec, encode
from native_drivers import BUILDS, build_driver, corrupt, needs_gxx, run, summary
from oracle.libde265 import OraclePicture, libde265_dump, session_oracle

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER_SOURCE = REPO_ROOT / "test" / "native" / "motion_driver.cpp"
PARIS = REPO_ROOT.parent / "shared" / "data" / "hevc" / "paris-ra-wpp.bin"


#: The MATRIX streams compared with the oracle: B pyramids, reference counts, merge list sizes, TMVP off, AMP,
#: weighted prediction, slices, WPP, open / closed GOP, RADL, temporal layers, Main10, 16x16 CTBs, odd sizes,
#: lossless, intra only and constrained intra.
MOTION_STREAMS = (
    "preset_ultrafast",
    "preset_slower",
    "bframes0",
    "bframes3",
    "bframes8_pyramid",
    "ref1",
    "ref2",
    "ref3",
    "ref4",
    "ref5",
    "weightp",
    "weightb",
    "amp_rect_on",
    "tmvp_off",
    "wpp_on",
    "slices2",
    "slices4",
    "lossless",
    "max_merge1",
    "max_merge3",
    "max_merge5",
    "open_gop",
    "closed_gop",
    "keyint1",
    "main10",
    "size_334x198",
    "size_202x138",
    "temporal_layers",
    "radl",
    "constrained_intra",
    "ctu16",
    "main10_slices_cu_lossless_tskip",
)
SPECS: dict[str, StreamSpec] = {spec.name: spec for spec in MATRIX if spec.name in MOTION_STREAMS}

needs_paris = pytest.mark.skipif(not PARIS.is_file(), reason="../shared/data/hevc/paris-ra-wpp.bin not present")

_MAGIC = b"MVF1"
NO_REF_POC = int(np.iinfo(np.int32).min)


@dataclass(frozen=True)
class MotionPicture:
    """One picture of the driver's ``--dump``.

    Per 4x4 luma block: ``pred_flag (2, Hb, Wb)``, ``mv (2, Hb, Wb, 2)``, ``ref_poc (2, Hb, Wb)`` (``NO_REF_POC``
    where the list is unused), ``ref_idx (2, Hb, Wb)`` (-1 where unused).
    """

    decode_index: int
    poc: int
    pred_flag: np.ndarray
    mv: np.ndarray
    ref_poc: np.ndarray
    ref_idx: np.ndarray


def read_motion(data: bytes) -> dict[int, MotionPicture]:
    """Parse a ``--dump`` file (layout in ``motion_driver.cpp``): ``{decode_index: picture}``."""
    pictures: dict[int, MotionPicture] = {}
    pos = 0
    while pos < len(data):
        assert data[pos : pos + 4] == _MAGIC, f"bad record tag at byte {pos}"
        index, poc, width, height = (int(v) for v in np.frombuffer(data, "<i4", 4, pos + 4))
        pos += 20
        hb, wb = -(-height // 4), -(-width // 4)
        plane = hb * wb
        pred_flag = np.frombuffer(data, np.uint8, 2 * plane, pos).reshape(2, hb, wb).astype(bool)
        pos += 2 * plane
        mv = np.frombuffer(data, "<i2", 4 * plane, pos).reshape(2, hb, wb, 2).astype(np.int16)
        pos += 8 * plane
        ref_poc = np.frombuffer(data, "<i4", 2 * plane, pos).reshape(2, hb, wb).astype(np.int64)
        pos += 8 * plane
        ref_idx = np.frombuffer(data, np.int8, 2 * plane, pos).reshape(2, hb, wb).copy()
        pos += 2 * plane
        pictures[index] = MotionPicture(index, poc, pred_flag, mv, ref_poc, ref_idx)
    return pictures


def describe_mismatch(mine: MotionPicture, oracle: OraclePicture, bad: np.ndarray, limit: int = 5) -> str:
    """Describe the first ``limit`` differing blocks of a picture: position, our motion and libde265's."""
    lines = [f"picture {oracle.decode_index} (POC {oracle.poc}): {int(bad.sum())} of {bad.size} blocks differ"]
    for by, bx in list(zip(*np.nonzero(bad), strict=True))[:limit]:
        lines.append(
            f"  block ({4 * bx}, {4 * by}): ours pred_flag {mine.pred_flag[:, by, bx].tolist()} "
            f"mv {mine.mv[:, by, bx].tolist()} ref_poc {mine.ref_poc[:, by, bx].tolist()} "
            f"ref_idx {mine.ref_idx[:, by, bx].tolist()}; libde265 pred_flag "
            f"{oracle.pred_flag[:, by, bx].tolist()} mv {oracle.mv[:, by, bx].tolist()} ref_poc "
            f"{oracle.ref_poc[:, by, bx].tolist()} ref_idx {oracle.ref_idx[:, by, bx].tolist()} "
            f"intra {bool(oracle.intra[by, bx])}"
        )
    return "\n".join(lines)


def compare_with_oracle(driver: Path, stream: Path, out: Path) -> tuple[int, int]:
    """Derive the motion of ``stream`` and compare every 4x4 block of every picture with libde265.

    Every picture libde265 decodes must be derived, with the same POC; predFlagL0/L1, mvL0/L1, refIdxL0/L1 and the
    POCs of the reference pictures must be equal in every block. Returns ``(pictures, blocks)`` compared.
    """
    counts = summary(run([str(driver), str(stream), "--dump", str(out)], timeout=300))
    mine = read_motion(out.read_bytes())
    oracle = libde265_dump(session_oracle(), stream)
    assert oracle.pictures and not oracle.skipped
    assert len(mine) == len(oracle.pictures) == counts["pictures"]
    assert counts["derived_pus"] == counts["pus"]
    failures: list[str] = []
    blocks = 0
    for picture in oracle.pictures:
        ours = mine[picture.decode_index]
        assert ours.poc == picture.poc, f"picture {picture.decode_index}: POC {ours.poc} != {picture.poc}"
        assert ours.pred_flag.shape == picture.pred_flag.shape, picture.decode_index
        bad = (
            (ours.pred_flag != picture.pred_flag).any(axis=0)
            | (ours.mv != picture.mv).any(axis=(0, 3))
            | (ours.ref_poc != picture.ref_poc).any(axis=0)
            | (ours.ref_idx != picture.ref_idx).any(axis=0)
        )
        blocks += bad.size
        if bad.any():
            failures.append(describe_mismatch(ours, picture, bad))
    assert not failures, "\n".join(failures[:5])
    return len(oracle.pictures), blocks


@pytest.fixture(scope="module")
def optimised_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the driver built with -O2, shared by the tests of this module."""
    return build_driver(DRIVER_SOURCE, tmp_path_factory.mktemp("motion_o2"), BUILDS["optimised"])


@pytest.fixture(scope="module")
def motion_streams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Return the :data:`MOTION_STREAMS` of the matrix, encoded once per module."""
    directory = tmp_path_factory.mktemp("motion_streams")
    return {name: encode(spec, directory) for name, spec in SPECS.items()}


def test_stream_selection_exists() -> None:
    """Every selected stream name is a MATRIX entry (a renamed entry must not silently drop out)."""
    assert set(SPECS) == set(MOTION_STREAMS)


@needs_gxx
@pytest.mark.parametrize("name", MOTION_STREAMS)
def test_libx265_motion_matches_libde265(
    optimised_driver: Path, motion_streams: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """predFlagLX, mvLX and the reference POCs of every 4x4 block of every picture equal libde265's."""
    pictures, blocks = compare_with_oracle(optimised_driver, motion_streams[name], tmp_path / "motion.bin")
    spec = SPECS[name]
    assert pictures == spec.frames
    # pic_width/height_in_luma_samples: the source size rounded up to the minimum CU size.
    assert blocks >= spec.frames * -(-spec.width // 4) * -(-spec.height // 4)
    print(f"{name}: {pictures} pictures, {blocks} blocks equal")


@needs_gxx
@needs_paris
@pytest.mark.slow
def test_paris_motion_matches_libde265(optimised_driver: Path, tmp_path: Path) -> None:
    """The same agreement over all 1000 pictures of the HM-encoded paris stream (CRA, B pyramid, WPP)."""
    pictures, blocks = compare_with_oracle(optimised_driver, PARIS, tmp_path / "motion.bin")
    assert pictures == 1000
    assert blocks == 1000 * (352 // 4) * (288 // 4)
    print(f"paris: {pictures} pictures, {blocks} blocks equal")


def clip3(low: int, high: int, value: int) -> int:
    """Clip3 of the standard (5.8)."""
    return low if value < low else high if value > high else value


def spec_add_mvd(mvp: int, mvd: int) -> int:
    """8.5.3.2.1 (8-192 .. 8-195): u = (mvp + mvd + 2^16) % 2^16, minus 2^16 when u >= 2^15."""
    u = (mvp + mvd + 2**16) % 2**16
    return u - 2**16 if u >= 2**15 else u


def spec_scale(mv: int, td_raw: int, tb_raw: int) -> int:
    """8.5.3.2.9 (8-196 .. 8-201) with Python integers (``/`` truncating toward zero, ``>>`` arithmetic)."""
    td, tb = clip3(-128, 127, td_raw), clip3(-128, 127, tb_raw)
    if td == 0:
        return mv
    tx = int((16384 + (abs(td) >> 1)) / td)
    dist_scale_factor = clip3(-4096, 4095, (tb * tx + 32) >> 6)
    product = dist_scale_factor * mv
    sign = (product > 0) - (product < 0)
    return clip3(-32768, 32767, sign * ((abs(product) + 127) >> 8))


@needs_gxx
def test_vector_arithmetic_matches_the_formulas(optimised_driver: Path) -> None:
    """The 16-bit wrap-around of mvp + mvd and the POC-distance scaling agree with the formulas on extreme inputs."""
    result = run([str(optimised_driver), "--arithmetic"], timeout=60)
    assert result.returncode == 0, result.stderr
    checked = 0
    for line in result.stdout.splitlines():
        kind, *values = line.split()
        numbers = [int(v) for v in values]
        if kind == "add":
            assert numbers[2] == spec_add_mvd(numbers[0], numbers[1]), line
        else:
            assert kind == "scale", line
            assert numbers[3] == spec_scale(numbers[0], numbers[1], numbers[2]), line
        checked += 1
    assert checked > 7000


@needs_gxx
@pytest.mark.slow
def test_sanitizer_build_matches_and_survives_corruption(motion_streams: dict[str, Path], tmp_path: Path) -> None:
    """Under ASan + UBSan: the derivation still matches libde265, and corrupted streams give an error or a result."""
    driver = build_driver(DRIVER_SOURCE, tmp_path, BUILDS["sanitizers"])
    for name in MOTION_STREAMS:
        compare_with_oracle(driver, motion_streams[name], tmp_path / "motion.bin")
    if PARIS.is_file():
        assert compare_with_oracle(driver, PARIS, tmp_path / "motion.bin")[0] == 1000
    for seed in range(32):
        source = motion_streams[MOTION_STREAMS[seed % len(MOTION_STREAMS)]]
        damaged = corrupt(source, tmp_path / f"corrupt{seed}.h265", seed)
        result = run([str(driver), str(damaged), "--dump", str(tmp_path / "corrupt.bin")], timeout=300)
        assert result.returncode in (0, 1), f"seed {seed}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, result.stderr
        if result.returncode == 1:
            assert result.stdout.strip().splitlines()[-1].startswith("error: "), result.stdout


def best_cpu_times_ms(driver: Path, stream: Path, repeats: int) -> tuple[float, float]:
    """Return the least process CPU time of ``repeats`` interleaved runs: parse only, with motion.

    The CPU time is the driver's ``cpu_ms``.
    """
    parse_only: list[float] = []
    with_motion: list[float] = []
    for _ in range(repeats):
        parse_only.append(summary(run([str(driver), str(stream), "--no-motion"], timeout=300))["cpu_ms"])
        with_motion.append(summary(run([str(driver), str(stream)], timeout=300))["cpu_ms"])
    return min(parse_only), min(with_motion)


@needs_gxx
@needs_paris
@pytest.mark.slow
def test_derivation_cost_on_paris(optimised_driver: Path) -> None:
    """The derivation adds at most 20% to parsing paris (least CPU time of 9 interleaved runs).

    35% is allowed here so that a loaded machine does not fail the test.
    """
    parse_only, with_motion = best_cpu_times_ms(optimised_driver, PARIS, 9)
    print(f"paris: parse {parse_only:.1f} ms, parse + derivation {with_motion:.1f} ms CPU")
    assert with_motion <= 1.35 * parse_only
