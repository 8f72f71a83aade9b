"""Replays of the HEVC fuzzing seed corpus (docs/fuzzing.md) through the parser.

The seed corpus is rebuilt here the way the fuzzing script (``bench/fuzz_hevc.sh``, harness
``test/fuzz/hevc_fuzzer.cpp``) builds it (:data:`SEED_STREAMS`: small libx265 streams, plus the first pictures of
the shared ``paris-ra-wpp.bin`` when present); a local ``.cache/fuzz/seeds/`` (mutated inputs a fuzzing run left
behind) is replayed as well. Each stream goes through the Python API (:class:`arseg_ros.codec.HevcParser` with
``motion=True``: every layer down to the motion derivation) whole and in chunks: raising ``HevcParseError`` is the
expected answer to bad input, anything else fails. The same streams also go through
``test/native/slice_data_driver.cpp`` built with AddressSanitizer + UndefinedBehaviorSanitizer (g++): a parse error
is fine, a sanitizer report or a crash is not. A reproducer of a future finding becomes a case here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from arseg_ros.codec import HevcParseError, HevcParser

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_SEEDS = REPO_ROOT / ".cache" / "fuzz" / "seeds"
PARIS = REPO_ROOT.parent / "shared" / "data" / "hevc" / "paris-ra-wpp.bin"
HEVC_DIR = REPO_ROOT / "arseg_ros" / "codec" / "hevc"
# The layers slice_data_driver.cpp needs (not a glob: a layer being written must not break this test).
DRIVER_LAYERS = ["bitreader", "nal", "params", "slice_header", "refs", "parser", "cabac", "cabac_tables", "slice_data"]

# (name, width, height, frames, x265 settings as EncoderSettings keyword arguments): the x265 part of the seed
# corpus of bench/fuzz_hevc.sh (which imports this list). One feature mix each.
SEED_STREAMS = [
    ("ibp_ctu16", 64, 48, 6, {"keyint": 6, "bframes": 2, "extra": "wpp=0:ctu=16:amp=1:rect=1"}),
    ("lossless_tskip", 64, 64, 4, {"keyint": 4, "bframes": 1, "extra": "wpp=0:lossless=1:tskip=1"}),
    ("weighted", 96, 64, 5, {"keyint": 5, "bframes": 1, "crf": 22, "extra": "wpp=0:weightp=1:weightb=1:signhide=0"}),
    # Not 128x96 or 128x128 with slices=2 (two CTB rows, one slice each): libx265 4.2 then writes streams that
    # neither this parser nor FFmpeg parses (FFmpeg: "Overread slice header"); 256x192 with slices=3 is fine.
    ("wpp_slices_b3", 256, 192, 8, {"keyint": 8, "bframes": 3, "refs": 4, "extra": "b-pyramid=1:slices=3"}),
    ("cu_qp_delta", 128, 64, 4, {"keyint": 4, "extra": "aq-mode=2:rd=6:rdoq-level=2:wpp=0:ctu=32"}),
    ("scaling_list", 64, 64, 3, {"keyint": 3, "extra": "scaling-list=default:wpp=0:tskip=1:cu-lossless=1"}),
]
# Seeds whose streams are also templates of the harness's slice-data mode (WPP off: fixed entry points would stop a
# mutated slice at the end of its first CTB row).
TEMPLATE_SEEDS = ("ibp_ctu16", "lossless_tskip", "weighted")
PARIS_PICTURES = (1, 3, 8)
PARIS_LIMIT = 60_000


def encode_seed(name: str) -> bytes:
    """Encode the Annex B stream of one :data:`SEED_STREAMS` entry (libx265 through PyAV; deterministic)."""
    from arseg_ros.codec.encode import EncoderSettings, encode_frames
    from arseg_ros.data.synthetic import panning_clip

    index = [s[0] for s in SEED_STREAMS].index(name)
    _, width, height, frames, settings = SEED_STREAMS[index]
    clip = panning_clip(width, height, frames, velocity=(2.5, 1.0), seed=index + 7)
    return b"".join(p.data for p in encode_frames(clip.frames, EncoderSettings(**settings)))


def first_pictures(data: bytes, pictures: int, limit: int = PARIS_LIMIT) -> bytes:
    """Return the prefix of an Annex B stream before its (pictures + 1)-th picture, cut at a NAL unit boundary.

    The prefix is at most ``limit`` bytes. A picture starts at a slice NAL unit with
    first_slice_segment_in_pic_flag.
    """
    starts, i = [], 0
    while (i := data.find(b"\x00\x00\x01", i)) >= 0:
        starts.append(i + 3)
        i += 3
    count, end = 0, 0
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        if s + 2 < len(data) and (data[s] >> 1) & 63 < 32 and data[s + 2] & 0x80:
            count += 1
            if count > pictures:
                break
        if e > limit:
            break
        end = e
    return data[:end]


def seed_corpus() -> dict[str, bytes]:
    """Return the seed streams (no fuzzer mode byte): ``{name: Annex B bytes}``."""
    out = {f"x265_{name}": encode_seed(name) for name, *_ in SEED_STREAMS}
    if PARIS.is_file():
        data = PARIS.read_bytes()
        out.update({f"paris_{k}pictures": first_pictures(data, k) for k in PARIS_PICTURES})
    return out


def replay(data: bytes, chunk: int) -> int:
    """Feed ``data`` to a fresh HevcParser in ``chunk``-byte pieces (0: whole), then flush it.

    Return the number of parse errors (each call may raise one; the parser stays usable). Any other exception
    propagates.
    """
    parser = HevcParser(motion=True)
    errors = 0
    pieces = [data] if chunk == 0 else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in [*pieces, None]:
        try:
            parser.feed(piece) if piece is not None else parser.flush()
        except HevcParseError:
            errors += 1
    return errors


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    corpus = seed_corpus()
    if LOCAL_SEEDS.is_dir():  # what bench/fuzz_hevc.sh generated here (first byte: the harness mode)
        for p in sorted(LOCAL_SEEDS.glob("x265_*")) + sorted(LOCAL_SEEDS.glob("paris_*")):
            corpus[f"local_{p.name}"] = p.read_bytes()[1:]
    return corpus


def test_seed_corpus_replays_through_python(seeds: dict[str, bytes]) -> None:
    assert len(seeds) >= len(SEED_STREAMS)
    for name, data in seeds.items():
        errors = replay(data, 0)
        assert replay(data, 777) == errors, name
        if not name.startswith("local_"):  # freshly encoded, complete streams: must parse cleanly
            assert errors == 0, name


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")


@pytest.fixture(scope="module")
def sanitized_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("fuzz_replay") / "slice_data_driver"
    sources = [REPO_ROOT / "test" / "native" / "slice_data_driver.cpp"] + [HEVC_DIR / f"{n}.cpp" for n in DRIVER_LAYERS]
    cmd = ["g++", "-std=c++17", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    cmd += ["-fno-omit-frame-pointer", f"-I{REPO_ROOT}", *map(str, sources), "-o", str(binary)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"build failed: {' '.join(cmd)}\n{result.stderr[-4000:]}"
    return binary


def run_sanitized(driver: Path, path: Path) -> str:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    result = subprocess.run([str(driver), str(path)], capture_output=True, text=True, timeout=120, env=env, check=False)
    report = f"{path.name}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-6000:]}"
    assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, report
    assert result.returncode in (0, 1), report  # 1: a parse error, reported by the driver
    assert "summary:" in result.stdout or "error:" in result.stdout, report
    return result.stdout


@needs_gxx
@pytest.mark.slow
def test_seed_corpus_replays_through_slice_data(
    sanitized_driver: Path, seeds: dict[str, bytes], tmp_path: Path
) -> None:
    for name, data in seeds.items():
        path = tmp_path / f"{name}.h265"
        path.write_bytes(data)
        out = run_sanitized(sanitized_driver, path)
        if not name.startswith("local_"):
            assert "summary:" in out, f"{name}: {out}"
