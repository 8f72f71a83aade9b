"""Exact motion-vector oracle for the tests: Debian's libde265 plus our accessor ``de265_motion_dump.cpp``.

``build_oracle(work_dir)`` fetches Debian's ``libde265`` source package with ``fetch_libde265.sh`` (apt-get
source), builds the static library with CMake and compiles the accessor against it; ``libde265_motion(binary,
stream)`` decodes an Annex B file and returns, for every picture in decode order, the motion data of every 4x4
luma block as libde265 derived it. ``session_oracle()`` is the entry point for tests: it builds once per session
into ``<repo>/.cache/libde265`` and skips the calling test only when apt-get cannot fetch the source (no apt or no
network); with ``ARSEG_REQUIRE_ORACLE=1`` in the environment that fails instead.

Nothing from libde265 is kept in the repository; the cache folder holds the unpacked source, the CMake build
and the accessor binary.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ORACLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = ORACLE_DIR.parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "libde265"
FETCH_SCRIPT = ORACLE_DIR / "fetch_libde265.sh"
ACCESSOR_SOURCE = ORACLE_DIR / "de265_motion_dump.cpp"
SOURCE_DIR_NAME = "libde265-src"
BUILD_DIR_NAME = "build"
BINARY_NAME = "de265_motion_dump"

#: Exit status of ``fetch_libde265.sh`` when apt could not fetch the source (no network, mirror unreachable).
FETCH_UNAVAILABLE = 3
#: ``ref_poc`` where the block does not predict from that list.
NO_REF_POC = int(np.iinfo(np.int32).min)

_MAGIC = b"DE265MV1"
_HEADER_FIELDS = ("decode_index", "poc", "nal_unit_type", "width", "height", "output", "integrity")


class OracleUnavailableError(RuntimeError):
    """The libde265 source could not be fetched because apt-get or the network is unavailable."""


@dataclass
class OraclePicture:
    """Motion data of one decoded picture, as libde265 derived it.

    ``poc``: PicOrderCntVal. ``nal_unit_type``: of its slice segments. ``width``/``height``: coded luma size
    (``pic_width/height_in_luma_samples``, before conformance-window cropping). Per 4x4 luma block, with
    ``Hb = ceil(height / 4)`` and ``Wb = ceil(width / 4)``: ``pred_flag (2, Hb, Wb) bool`` (predFlagL0/L1),
    ``mv (2, Hb, Wb, 2) int16`` ((x, y) in quarter samples; the reference block is at ``(x + mvx/4, y + mvy/4)``),
    ``ref_idx (2, Hb, Wb) int8``, ``ref_poc (2, Hb, Wb) int64`` (POC of ``RefPicListX[ref_idx]`` of the slice
    covering the block), ``intra (Hb, Wb) bool`` (CuPredMode == MODE_INTRA). Where ``pred_flag[X]`` is False,
    ``mv[X]`` is 0, ``ref_idx[X]`` is -1 and ``ref_poc[X]`` is ``NO_REF_POC``.

    ``decode_index``: position among the coded pictures of the stream (skipped ones included, see
    ``OracleDump.skipped``). ``output``: libde265's PicOutputFlag (False for ``pic_output_flag`` 0 and for the
    RASL pictures of a CRA that starts decoding, which libde265 still decodes from generated references).
    ``integrity``: libde265's INTEGRITY_* code (0 correct, 1 unavailable reference, 2 not decoded, 3 decoding
    errors, 4 derived from a faulty reference).
    """

    poc: int
    nal_unit_type: int
    width: int
    height: int
    pred_flag: np.ndarray
    mv: np.ndarray
    ref_idx: np.ndarray
    ref_poc: np.ndarray
    intra: np.ndarray
    decode_index: int = 0
    output: bool = True
    integrity: int = 0


@dataclass
class OracleDump:
    """Everything the accessor reports for one stream.

    ``pictures``: decoded pictures in decode order. ``skipped``: ``(decode_index, nal_unit_type)`` of coded
    pictures libde265 produced no picture for (first slice segment rejected). ``sps_dropped``: byte-identical
    repeated SPS NAL units the accessor did not pass on. ``stderr``: the accessor's diagnostics.
    """

    pictures: list[OraclePicture]
    skipped: list[tuple[int, int]]
    sps_dropped: int
    stderr: str


def fetch_source(work_dir: Path) -> Path:
    """Unpack Debian's libde265 source into ``work_dir/libde265-src`` (no-op if present) and return that folder.

    Raises ``OracleUnavailableError`` when apt-get cannot fetch it (no apt, no network), ``RuntimeError`` otherwise.
    """
    source = work_dir / SOURCE_DIR_NAME
    if (source / "CMakeLists.txt").is_file():
        return source
    if shutil.which("apt-get") is None:
        raise OracleUnavailableError("apt-get not found: cannot fetch Debian's libde265 source")
    result = subprocess.run(["bash", str(FETCH_SCRIPT), str(work_dir)], capture_output=True, text=True)
    if result.returncode == FETCH_UNAVAILABLE:
        raise OracleUnavailableError(f"apt-get could not fetch libde265 source (network unavailable?): {result.stderr}")
    if result.returncode != 0:
        raise RuntimeError(f"{FETCH_SCRIPT.name} failed ({result.returncode}): {result.stderr}")
    return source


def _run(command: list[str], log: Path) -> None:
    """Run a build step, writing its output to ``log``; raise with the log's tail on failure."""
    if shutil.which(command[0]) is None:
        raise RuntimeError(f"{command[0]} not found (CI installs cmake and g++ with apt-get)")
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}), see {log}:\n{tail}")


def _build_library(source: Path, build: Path) -> Path:
    """Build libde265 as a static library (Release, -O2; no SDL, dec265 or enc265) and return ``libde265.a``."""
    library = build / "libde265" / "libde265.a"
    if library.is_file():
        return library
    flags = "-O2 -DNDEBUG"
    _run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_C_FLAGS_RELEASE={flags}",
            f"-DCMAKE_CXX_FLAGS_RELEASE={flags}",
            "-DBUILD_SHARED_LIBS=OFF",
            "-DENABLE_SDL=OFF",
            "-DENABLE_DECODER=OFF",
            "-DENABLE_ENCODER=OFF",
        ],
        build.parent / "cmake-configure.log",
    )
    jobs = str(max(1, os.cpu_count() or 1))
    _run(["cmake", "--build", str(build), "--target", "de265", "-j", jobs], build.parent / "cmake-build.log")
    if not library.is_file():
        raise RuntimeError(f"CMake build finished without {library}")
    return library


def build_oracle(work_dir: Path) -> Path:
    """Fetch, build and compile everything the oracle needs under ``work_dir``; return the accessor binary.

    Cached: the fetch is skipped when the source is unpacked, the library build when ``libde265.a`` exists, and
    the accessor compile when the binary is newer than ``de265_motion_dump.cpp`` and the library. Concurrent
    callers on the same ``work_dir`` are serialised by a lock file.
    """
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        source = fetch_source(work_dir)
        build = work_dir / BUILD_DIR_NAME
        library = _build_library(source, build)
        binary = work_dir / BINARY_NAME
        if binary.is_file() and binary.stat().st_mtime >= max(ACCESSOR_SOURCE.stat().st_mtime, library.stat().st_mtime):
            return binary
        compiler = os.environ.get("CXX", "g++")
        includes = [source, source / "libde265", build, build / "libde265"]
        command = [compiler, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-DLIBDE265_STATIC_BUILD"]
        command += [arg for folder in includes for arg in ("-isystem", str(folder))]
        partial = binary.with_suffix(".partial")
        command += [str(ACCESSOR_SOURCE), str(library), "-lpthread", "-o", str(partial)]
        _run(command, work_dir / "accessor-build.log")
        partial.replace(binary)
        return binary


def _read_dump(data: bytes) -> tuple[list[OraclePicture], list[tuple[int, int]], int]:
    """Parse the accessor's output (layout documented in ``de265_motion_dump.cpp``)."""
    if data[: len(_MAGIC)] != _MAGIC:
        raise ValueError("not a de265_motion_dump file (bad magic)")
    pos = len(_MAGIC)
    pictures: list[OraclePicture] = []
    skipped: list[tuple[int, int]] = []

    def take(dtype: type, count: int) -> np.ndarray:
        nonlocal pos
        size = np.dtype(dtype).itemsize * count
        if pos + size > len(data):
            raise ValueError("truncated de265_motion_dump file")
        values = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=pos)
        pos += size
        return values

    while True:
        tag = bytes(take(np.uint8, 4))
        if tag == b"PICT":
            header = dict(zip(_HEADER_FIELDS, (int(v) for v in take(np.int32, len(_HEADER_FIELDS))), strict=True))
            hb, wb = -(-header["height"] // 4), -(-header["width"] // 4)
            plane = hb * wb
            pictures.append(
                OraclePicture(
                    poc=header["poc"],
                    nal_unit_type=header["nal_unit_type"],
                    width=header["width"],
                    height=header["height"],
                    pred_flag=take(np.uint8, 2 * plane).reshape(2, hb, wb).astype(bool),
                    mv=take(np.int16, 4 * plane).reshape(2, hb, wb, 2).astype(np.int16),
                    ref_idx=take(np.int8, 2 * plane).reshape(2, hb, wb).copy(),
                    ref_poc=take(np.int32, 2 * plane).reshape(2, hb, wb).astype(np.int64),
                    intra=take(np.uint8, plane).reshape(hb, wb).astype(bool),
                    decode_index=header["decode_index"],
                    output=bool(header["output"]),
                    integrity=header["integrity"],
                )
            )
        elif tag == b"SKIP":
            index, nal_type = (int(v) for v in take(np.int32, 2))
            skipped.append((index, nal_type))
        elif tag == b"END!":
            num_pictures, num_skipped, sps_dropped = (int(v) for v in take(np.int32, 3))
            if (num_pictures, num_skipped) != (len(pictures), len(skipped)) or pos != len(data):
                raise ValueError("inconsistent de265_motion_dump file (counts or trailing data)")
            return pictures, skipped, sps_dropped
        else:
            raise ValueError(f"unknown record tag {tag!r} at byte {pos - 4}")


def libde265_dump(binary: Path, stream: Path, out: Path | None = None) -> OracleDump:
    """Decode the Annex B file ``stream`` with the accessor ``binary`` and return its full report.

    ``out``: where to keep the raw dump (default: a temporary file, removed afterwards).
    Raises ``RuntimeError`` when the accessor fails.
    """
    with tempfile.TemporaryDirectory(prefix="de265mv") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "motion.mv"
        result = subprocess.run([str(binary), str(stream), str(target)], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{binary.name} {stream} failed ({result.returncode}): {result.stderr}")
        pictures, skipped, sps_dropped = _read_dump(target.read_bytes())
    return OracleDump(pictures=pictures, skipped=skipped, sps_dropped=sps_dropped, stderr=result.stderr)


def libde265_motion(binary: Path, stream: Path) -> list[OraclePicture]:
    """Per-picture 4x4 motion data of ``stream`` as libde265 decodes it, in decode order (see ``OraclePicture``).

    Coded pictures libde265 rejects are left out; ``libde265_dump`` reports them.
    """
    return libde265_dump(binary, stream).pictures


@functools.cache
def _session_binary() -> Path | Exception:
    """Build the oracle once per process into ``DEFAULT_CACHE`` (or ``$ARSEG_ORACLE_CACHE``); failures are kept."""
    try:
        return build_oracle(Path(os.environ.get("ARSEG_ORACLE_CACHE", DEFAULT_CACHE)))
    except (OracleUnavailableError, RuntimeError, OSError) as exc:
        return exc


def session_oracle() -> Path:
    """Return the accessor binary for tests, built once per session.

    Calls ``pytest.skip`` (with the reason) only when apt-get or the network is unavailable to fetch the
    libde265 source, unless ``ARSEG_REQUIRE_ORACLE=1``, which makes that an error; build failures always raise.
    """
    import pytest

    result = _session_binary()
    if isinstance(result, OracleUnavailableError) and os.environ.get("ARSEG_REQUIRE_ORACLE") != "1":
        pytest.skip(f"libde265 oracle unavailable: {result}")
    if isinstance(result, Exception):
        raise result
    return result
