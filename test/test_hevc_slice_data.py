"""HEVC slice-data layer (C++): the native driver parses libx265 and HM streams with zero synchronisation errors.

The driver (``test/native/slice_data_driver.cpp``) is built from every ``arseg_ros/codec/hevc/*.cpp`` except the
Python bindings, once with ``-O2`` and once with AddressSanitizer + UndefinedBehaviorSanitizer. It runs the header
layers and the slice-data layer over a whole Annex B file and prints one ``summary:`` line of ``key=value`` counts,
or ``error: ...`` with a non-zero exit status. With ``--dump`` it also writes per-picture 4x4-block maps (coded,
intra, and the syntax of explicitly coded inter PUs), which are compared with the libde265 oracle's motion data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from native_drivers import BUILDS, build_driver, corrupt, needs_gxx, run, summary
from oracle.libde265 import libde265_dump, session_oracle

from arseg_ros.data.synthetic import panning_clip

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER_SOURCE = REPO_ROOT / "test" / "native" / "slice_data_driver.cpp"
PARIS = REPO_ROOT.parent / "shared" / "data" / "hevc" / "paris-ra-wpp.bin"


needs_paris = pytest.mark.skipif(not PARIS.is_file(), reason="../shared/data/hevc/paris-ra-wpp.bin not present")


@dataclass(frozen=True)
class Stream:
    """One libx265 test stream: size, frame count, pixel format, preset and ``x265-params`` (features under test).

    ``fade``: the content darkens linearly to ``1 - fade`` of its brightness (makes weighted prediction worth it).
    ``crossfade``: the content dissolves linearly into a second scene over the clip, so that a picture is close to
    the average of its neighbours (makes bi-prediction worth it).
    """

    name: str
    x265_params: str = ""
    preset: str = "medium"
    width: int = 128
    height: int = 96
    frames: int = 10
    pix_fmt: str = "yuv420p"
    velocity: tuple[float, float] = (2.5, 1.0)
    fade: float = 0.0
    crossfade: bool = False


_B_PYRAMID = "bframes=3:b-pyramid=1:b-adapt=0"

STREAMS = [
    Stream("ultrafast", preset="ultrafast"),
    Stream("medium"),
    Stream("slower", preset="slower", frames=8),
    Stream("bframes0", "bframes=0"),
    Stream("bframes3_pyramid", _B_PYRAMID, crossfade=True),
    Stream("ref1", "ref=1"),
    Stream("ref4", f"ref=4:{_B_PYRAMID}", crossfade=True),
    Stream("amp_on", "amp=1:rect=1"),
    Stream("amp_off", "amp=0:rect=0"),
    Stream("wpp_on", "wpp=1", width=256, height=192, frames=8),
    Stream("wpp_off", "wpp=0", width=256, height=192, frames=8),
    Stream("slices3", "slices=3:wpp=1", width=256, height=192, frames=8),
    Stream("signhide_off", "signhide=0"),
    Stream("tskip", "tskip=1"),
    Stream("lossless", "lossless=1"),
    Stream("cu_lossless", "cu-lossless=1:qp=4"),
    Stream("max_merge1", "max-merge=1"),
    Stream("max_merge5", "max-merge=5"),
    Stream("keyint1", "keyint=1"),
    Stream("scaling_list", "scaling-list=default"),
    Stream("main10", _B_PYRAMID, pix_fmt="yuv420p10le", crossfade=True),
    Stream("odd_gray", width=333, height=197, frames=6, pix_fmt="gray"),
    Stream("odd_334x198", width=334, height=198, frames=6),
    Stream("temporal_mvp_off", "temporal-mvp=0"),
    Stream("sao_off", "sao=0"),
    Stream("weighted", f"weightp=1:weightb=1:{_B_PYRAMID}", fade=0.6),
    Stream("ctu16", "ctu=16"),
    Stream("ctu32_mincu8", "ctu=32:min-cu-size=8"),
    Stream("qg16_aq", "qg-size=16:aq-mode=2"),
    Stream("deep_rqt", "tu-intra-depth=4:tu-inter-depth=4:max-tu-size=16", crossfade=True),
    Stream("min_cu16", "ctu=32:min-cu-size=16:tu-inter-depth=2", crossfade=True),
]


def encode(stream: Stream, directory: Path) -> Path:
    """Encode ``stream`` with libx265 into ``directory/<name>.h265`` (raw Annex B)."""
    path = directory / f"{stream.name}.h265"
    frames = panning_clip(stream.width, stream.height, stream.frames, velocity=stream.velocity, seed=7).frames
    if stream.fade:
        gain = np.linspace(1.0, 1.0 - stream.fade, stream.frames, dtype=np.float32).reshape(-1, 1, 1, 1)
        frames = np.clip(frames * gain + 0.5, 0, 255).astype(np.uint8)
    if stream.crossfade:
        other = panning_clip(stream.width, stream.height, stream.frames, velocity=(-1.0, 0.5), seed=8).frames
        mix = np.linspace(0.0, 1.0, stream.frames, dtype=np.float32).reshape(-1, 1, 1, 1)
        frames = np.clip(frames * (1.0 - mix) + other * mix + 0.5, 0, 255).astype(np.uint8)
    with av.open(str(path), "w", format="hevc") as container:
        video = container.add_stream("libx265", rate=30)
        video.width, video.height, video.pix_fmt = stream.width, stream.height, stream.pix_fmt
        params = ":".join(p for p in ("log-level=error", stream.x265_params) if p)
        video.options = {"preset": stream.preset, "x265-params": params}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


@pytest.fixture(scope="module")
def optimised_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the driver built with -O2, shared by the tests of this module."""
    return build_driver(DRIVER_SOURCE, tmp_path_factory.mktemp("slice_data_o2"), BUILDS["optimised"])


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every stream of :data:`STREAMS`, encoded once per test session."""
    directory = tmp_path_factory.mktemp("slice_data_streams")
    return {stream.name: encode(stream, directory) for stream in STREAMS}


def check_plausible(name: str, counts: dict[str, float], frames: int) -> None:
    """Check the counts every stream must show, and the feature-specific counts of the stream ``name``."""
    assert counts["pictures"] == frames
    assert counts["ctus"] == counts["ctbs_expected"] == frames * counts["ctbs_per_picture"]
    assert counts["intra_cus"] > 0
    assert counts["pus"] >= counts["skip_cus"] + counts["inter_cus"]
    assert counts["merge_pus"] >= counts["skip_cus"]
    if name == "keyint1":
        assert counts["inter_cus"] == counts["skip_cus"] == counts["pus"] == 0
    else:
        assert counts["inter_cus"] + counts["skip_cus"] > 0
    if name in ("bframes3_pyramid", "ref4", "main10"):
        assert counts["bi_pus"] > 0
    if name == "bframes0":
        assert counts["bi_pus"] == 0
    if name == "tskip":
        assert counts["transform_skip_blocks"] > 0
    if name == "lossless":
        assert counts["transquant_bypass_cus"] == counts["intra_cus"] + counts["inter_cus"] + counts["skip_cus"]
    if name == "cu_lossless":
        assert counts["transquant_bypass_cus"] > 0
    if name == "max_merge1":
        assert counts["merge_pus"] > 0
    if name == "sao_off":
        assert counts["sao_ctus"] == 0
    if name in ("medium", "slower"):
        assert counts["sao_ctus"] > 0
    if name == "qg16_aq":
        assert counts["cu_qp_deltas"] > 0
    if name == "wpp_on":
        assert counts["max_entry_points"] == 2  # three CTB rows
    if name == "wpp_off":
        assert counts["max_entry_points"] == 0
    if name == "slices3":
        assert counts["slice_segments"] == 3 * frames


@needs_gxx
@pytest.mark.parametrize("stream", STREAMS, ids=[s.name for s in STREAMS])
def test_libx265_streams_parse_in_sync(optimised_driver: Path, streams: dict[str, Path], stream: Stream) -> None:
    """Every slice segment of every picture ends exactly at its entry points and its end; the counts add up."""
    counts = summary(run([str(optimised_driver), str(streams[stream.name])], timeout=120))
    check_plausible(stream.name, counts, stream.frames)


@needs_gxx
@needs_paris
def test_paris_hm_stream_parses_in_sync(optimised_driver: Path) -> None:
    """The HM-encoded paris stream (B pyramid, CRA, WPP, AMP, transform skip...): all 1000 pictures in sync."""
    counts = summary(run([str(optimised_driver), str(PARIS)], timeout=300))
    assert counts["pictures"] == 1000
    assert counts["ctus"] == counts["ctbs_expected"] == 1000 * counts["ctbs_per_picture"]
    assert counts["ctbs_per_picture"] == 30  # 352x288 in 64x64 CTBs: 6 x 5
    assert counts["bi_pus"] > 0
    assert counts["transform_skip_blocks"] > 0
    assert counts["max_entry_points"] == 4  # one WPP substream per CTB row


@dataclass(frozen=True)
class BlockMaps:
    """One picture of the driver's ``--dump``: per 4x4 luma block (``(Hb, Wb)``, ``(2, Hb, Wb)`` for the lists).

    ``coded``: a CU covers it. ``intra``: CuPredMode == MODE_INTRA. ``explicit``: an inter PU with merge_flag 0
    covers it; ``pred_flag``/``ref_idx``: that PU's inter_pred_idc / ref_idx_lX (False / -1 elsewhere).
    """

    coded: np.ndarray
    intra: np.ndarray
    explicit: np.ndarray
    pred_flag: np.ndarray
    ref_idx: np.ndarray


def read_block_maps(data: bytes) -> dict[int, BlockMaps]:
    """Parse a ``--dump`` file (layout in ``slice_data_driver.cpp``): ``{decode_index: maps}``."""
    pictures: dict[int, BlockMaps] = {}
    pos = 0
    while pos < len(data):
        assert data[pos : pos + 4] == b"SDP1", f"bad record tag at byte {pos}"
        index, width, height = (int(v) for v in np.frombuffer(data, "<i4", 3, pos + 4))
        pos += 16
        hb, wb = -(-height // 4), -(-width // 4)
        # Planes in file order: coded, intra, explicit, pred_flag L0/L1, ref_idx L0/L1.
        flags = np.frombuffer(data, np.uint8, 5 * hb * wb, pos).reshape(5, hb, wb).astype(bool)
        pos += 5 * hb * wb
        ref_idx = np.frombuffer(data, np.int8, 2 * hb * wb, pos).reshape(2, hb, wb)
        pos += 2 * hb * wb
        pictures[index] = BlockMaps(
            coded=flags[0], intra=flags[1], explicit=flags[2], pred_flag=flags[3:5], ref_idx=ref_idx
        )
    return pictures


def compare_with_oracle(driver: Path, stream: Path, out: Path) -> int:
    """Parse ``stream`` with ``--dump`` and compare with libde265; returns the number of explicit inter blocks.

    Every picture libde265 decodes must be parsed, every block covered by a CU, the intra map equal, and where an
    inter PU has merge_flag 0 its inter_pred_idc and ref_idx_lX must be libde265's predFlagLX and refIdxLX.
    """
    summary(run([str(driver), str(stream), "--dump", str(out)], timeout=300))
    mine = read_block_maps(out.read_bytes())
    oracle = libde265_dump(session_oracle(), stream)
    assert oracle.pictures and not oracle.skipped
    explicit_blocks = 0
    for picture in oracle.pictures:
        maps = mine[picture.decode_index]
        assert maps.coded.all(), f"picture {picture.decode_index}: blocks without a CU"
        assert np.array_equal(maps.intra, picture.intra), f"picture {picture.decode_index}: intra map differs"
        explicit = maps.explicit
        assert np.array_equal(maps.pred_flag[:, explicit], picture.pred_flag[:, explicit]), picture.decode_index
        assert np.array_equal(maps.ref_idx[:, explicit], picture.ref_idx[:, explicit]), picture.decode_index
        explicit_blocks += int(explicit.sum())
    assert len(mine) == len(oracle.pictures)
    return explicit_blocks


@needs_gxx
@pytest.mark.parametrize("stream", STREAMS, ids=[s.name for s in STREAMS])
def test_cu_and_pu_syntax_match_libde265(
    optimised_driver: Path, streams: dict[str, Path], stream: Stream, tmp_path: Path
) -> None:
    """Intra/inter maps and the explicit inter PU syntax agree with libde265 on every libx265 stream."""
    explicit_blocks = compare_with_oracle(optimised_driver, streams[stream.name], tmp_path / "maps.bin")
    assert (explicit_blocks == 0) == (stream.name == "keyint1")


@needs_gxx
@needs_paris
@pytest.mark.slow
def test_paris_cu_and_pu_syntax_match_libde265(optimised_driver: Path, tmp_path: Path) -> None:
    """The same agreement over all 1000 pictures of the HM-encoded paris stream."""
    assert compare_with_oracle(optimised_driver, PARIS, tmp_path / "maps.bin") > 100_000


@needs_gxx
@pytest.mark.slow
def test_sanitizer_build_in_sync_and_robust_to_corruption(streams: dict[str, Path], tmp_path: Path) -> None:
    """Under ASan + UBSan: every stream parses in sync, and corrupted slice data gives a located error or parses."""
    driver = build_driver(DRIVER_SOURCE, tmp_path, BUILDS["sanitizers"])
    for stream in STREAMS:
        counts = summary(run([str(driver), str(streams[stream.name])], timeout=300))
        check_plausible(stream.name, counts, stream.frames)
    if PARIS.is_file():
        assert summary(run([str(driver), str(PARIS)], timeout=600))["pictures"] == 1000
    errors = 0
    for seed in range(24):
        source = streams[STREAMS[seed % len(STREAMS)].name]
        damaged = corrupt(source, tmp_path / f"corrupt{seed}.h265", seed)
        result = run([str(driver), str(damaged)], timeout=300)
        assert result.returncode in (0, 1), f"seed {seed}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, result.stderr
        if result.returncode == 1:
            errors += 1
            message = result.stdout.strip().splitlines()[-1]
            assert message.startswith("error: "), message
            assert "picture" in message and "slice segment" in message and "CTU" in message, message
    assert errors > 0
