"""The libde265 motion-vector oracle (``test/oracle``) against streams whose true motion is known.

Clips come from ``panning_clip``, whose content moves by exactly ``(vx, vy)`` pixels per frame, so a block of the
picture with POC ``p`` predicted from the picture with POC ``r`` has the true quarter-sample motion vector
``4 * (p - r) * (vx, vy)`` (the reference block is at ``(x + mvx / 4, y + mvy / 4)``). libx265 finds it exactly on
textured blocks with integer velocities, so medians over interior blocks must match it exactly.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from oracle.libde265 import NO_REF_POC, OracleDump, OraclePicture, libde265_dump, session_oracle

from arseg_ros.data.synthetic import panning_clip

REPO_ROOT = Path(__file__).resolve().parent.parent
PARIS = REPO_ROOT.parent / "shared" / "data" / "hevc" / "paris-ra-wpp.bin"
IRAP_TYPES = range(16, 24)
IDR_TYPES = (19, 20)
RASL_TYPES = (8, 9)
CRA_TYPE = 21
WIDTH, HEIGHT = 128, 96
MARGIN = 16  # pixels: blocks this close to the border may point outside the picture or be intra-coded


@pytest.fixture(scope="module")
def oracle() -> Path:
    """Return the accessor binary (built once per session; skipped only without apt/network)."""
    return session_oracle()


def encode(path: Path, frames: np.ndarray, x265_params: str) -> Path:
    """Encode RGB ``frames`` (n, h, w, 3) with PyAV's libx265 into the raw Annex B file ``path``."""
    with av.open(str(path), "w", format="hevc") as container:
        stream = container.add_stream("libx265", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"x265-params": x265_params}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def ffmpeg_frame_count(path: Path) -> int:
    """Count the frames FFmpeg's HEVC decoder outputs for ``path`` (an independent picture count)."""
    with av.open(str(path), format="hevc") as container:
        return sum(1 for _ in container.decode(video=0))


def textured_interior(frame: np.ndarray, min_std: float = 4.0) -> np.ndarray:
    """(Hb, Wb) mask of 4x4 blocks at least ``MARGIN`` pixels from the border whose luma is not flat."""
    luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = luma.shape
    blocks = luma[: h // 4 * 4, : w // 4 * 4].reshape(h // 4, 4, w // 4, 4)
    mask = blocks.std(axis=(1, 3)) >= min_std
    edge = MARGIN // 4
    mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = False, False, False, False
    return mask


def check_picture_invariants(pictures: Sequence[OraclePicture]) -> None:
    """Layout and consistency checks every oracle dump must pass."""
    decoded: set[int] = set()
    for picture in pictures:
        hb, wb = -(-picture.height // 4), -(-picture.width // 4)
        assert picture.pred_flag.shape == (2, hb, wb) and picture.pred_flag.dtype == bool
        assert picture.mv.shape == (2, hb, wb, 2) and picture.mv.dtype == np.int16
        assert picture.ref_idx.shape == (2, hb, wb) and picture.ref_idx.dtype == np.int8
        assert picture.ref_poc.shape == (2, hb, wb) and picture.ref_poc.dtype == np.int64
        assert picture.intra.shape == (hb, wb) and picture.intra.dtype == bool
        assert picture.integrity == 0
        inter = picture.pred_flag.any(axis=0)
        assert not (inter & picture.intra).any(), "a block is both intra and inter"
        unused = ~picture.pred_flag
        assert (picture.mv[unused] == 0).all() and (picture.ref_idx[unused] == -1).all()
        assert (picture.ref_poc[unused] == NO_REF_POC).all()
        assert (picture.ref_idx[picture.pred_flag] >= 0).all()
        if picture.nal_unit_type in IRAP_TYPES:
            assert picture.intra.all(), f"IRAP picture POC {picture.poc} has inter blocks"
        if picture.nal_unit_type in IDR_TYPES:
            decoded.clear()
        used = set(np.unique(picture.ref_poc[picture.pred_flag]).tolist())
        assert used <= decoded, f"POC {picture.poc} refers to undecoded POCs {sorted(used - decoded)}"
        assert (picture.ref_poc[picture.pred_flag] != picture.poc).all()
        decoded.add(picture.poc)


def motion_per_poc_distance(
    picture: OraclePicture, mask: np.ndarray, lists: Sequence[int] = (0, 1)
) -> tuple[np.ndarray, int]:
    """Median of ``mv / (poc - ref_poc)`` over ``mask``'s blocks predicted from the given lists, and their count."""
    per_distance = []
    for lx in lists:
        used = picture.pred_flag[lx] & mask
        distance = (picture.poc - picture.ref_poc[lx][used]).reshape(-1, 1)
        per_distance.append(picture.mv[lx][used].astype(np.float64) / distance)
    values = np.concatenate(per_distance)
    return (np.median(values, axis=0) if len(values) else np.full(2, np.nan)), len(values)


@pytest.fixture(scope="module")
def p_stream(oracle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path, OracleDump]:
    """14 frames panning (2, 1) px/frame, P-only, one reference; keyframes (with repeated headers) at 0 and 12."""
    frames = panning_clip(WIDTH, HEIGHT, 14, velocity=(2.0, 1.0), seed=3).frames
    path = encode(tmp_path_factory.mktemp("oracle") / "p.h265", frames, "keyint=12:bframes=0:ref=1:log-level=error")
    return frames, path, libde265_dump(oracle, path)


@pytest.fixture(scope="module")
def b_stream(oracle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path, OracleDump]:
    """Return 30 frames panning (2, -1) px/frame with up to 3 B-frames, their HEVC stream and its oracle dump.

    The stream has open-GOP CRA keyframes with RASL pictures and repeated parameter sets every 12 frames (without
    dropping the repeated SPS, libde265 rejects the RASL pictures' references).
    """
    frames = panning_clip(WIDTH, HEIGHT, 30, velocity=(2.0, -1.0), seed=5).frames
    path = encode(tmp_path_factory.mktemp("oracle") / "b.h265", frames, "keyint=12:bframes=3:log-level=error")
    return frames, path, libde265_dump(oracle, path)


def test_p_stream_pictures_and_pocs(p_stream: tuple[np.ndarray, Path, OracleDump]) -> None:
    frames, path, dump = p_stream
    pictures = dump.pictures
    assert len(pictures) == len(frames) == ffmpeg_frame_count(path)
    assert dump.skipped == []
    assert dump.sps_dropped >= 1, "x265 repeats the SPS at the second keyframe; the accessor drops the copy"
    assert [p.decode_index for p in pictures] == list(range(len(frames)))
    assert all((p.width, p.height) == (WIDTH, HEIGHT) and p.output for p in pictures)
    assert pictures[0].nal_unit_type in IDR_TYPES and pictures[0].poc == 0
    for previous, picture in itertools.pairwise(pictures):
        expected = 0 if picture.nal_unit_type in IDR_TYPES else previous.poc + 1
        assert picture.poc == expected
    check_picture_invariants(pictures)


def test_p_stream_motion_is_the_pan(p_stream: tuple[np.ndarray, Path, OracleDump]) -> None:
    frames, _, dump = p_stream
    for index, picture in enumerate(dump.pictures):
        if picture.nal_unit_type in IRAP_TYPES:
            continue
        assert not picture.pred_flag[1].any(), "P slices have no list 1"
        used = picture.pred_flag[0]
        assert (picture.ref_idx[0][used] == 0).all() and (picture.ref_poc[0][used] == picture.poc - 1).all()
        mask = textured_interior(frames[index]) & used
        assert mask.sum() >= 100
        assert np.median(picture.mv[0][mask], axis=0).tolist() == [8, 4], f"POC {picture.poc}"


def test_b_stream_reorders_and_uses_list1(b_stream: tuple[np.ndarray, Path, OracleDump]) -> None:
    frames, path, dump = b_stream
    pictures = dump.pictures
    pocs = [p.poc for p in pictures]
    assert len(pictures) == len(frames) == ffmpeg_frame_count(path)
    assert dump.skipped == []
    assert sorted(pocs) == list(range(len(frames)))
    assert pocs != sorted(pocs), "B-frames must be decoded out of output order"
    assert dump.sps_dropped >= 1
    rasl = [p for p in pictures if p.nal_unit_type in RASL_TYPES]
    assert rasl and all(p.output for p in pictures)
    check_picture_invariants(pictures)
    backward = [p.poc for p in pictures if (p.pred_flag[1] & (p.ref_poc[1] > p.poc)).any()]
    assert len(backward) >= 4, "list 1 must predict from later pictures"
    bi = sum(int((p.pred_flag[0] & p.pred_flag[1]).sum()) for p in pictures)
    assert bi > 0, "no bi-predicted block"


def test_b_stream_motion_scales_with_poc_distance(b_stream: tuple[np.ndarray, Path, OracleDump]) -> None:
    frames, _, dump = b_stream
    for picture in dump.pictures:
        if picture.nal_unit_type in IRAP_TYPES:
            continue
        mask = textured_interior(frames[picture.poc])
        median, count = motion_per_poc_distance(picture, mask)
        assert count >= 100
        assert median.tolist() == [8.0, -4.0], f"POC {picture.poc}"


def test_intra_only_stream(oracle: Path, tmp_path: Path) -> None:
    frames = panning_clip(64, 48, 3, velocity=(1.0, 0.0), seed=1).frames
    path = encode(tmp_path / "intra.h265", frames, "keyint=1:log-level=error")
    pictures = libde265_dump(oracle, path).pictures
    assert [p.poc for p in pictures] == [0, 0, 0]
    assert all(p.intra.all() and not p.pred_flag.any() for p in pictures)
    check_picture_invariants(pictures)


@pytest.mark.skipif(not PARIS.is_file(), reason="../shared/data/hevc/paris-ra-wpp.bin not present")
def test_paris_random_access_wpp(oracle: Path, record_property: pytest.RecordProperty) -> None:
    start = time.perf_counter()
    dump = libde265_dump(oracle, PARIS)
    elapsed = time.perf_counter() - start
    record_property("decode_seconds", round(elapsed, 3))
    pictures = dump.pictures
    assert len(pictures) == 1000 and dump.skipped == [] and dump.sps_dropped == 0
    assert all((p.width, p.height) == (352, 288) and p.output for p in pictures)
    pocs = [p.poc for p in pictures]
    assert sorted(pocs) == list(range(1000)) and pocs != sorted(pocs)
    assert pictures[0].nal_unit_type in IRAP_TYPES
    check_picture_invariants(pictures)
    assert sum(int(p.pred_flag[1].any()) for p in pictures) > 500
    assert elapsed < 60
    assert ffmpeg_frame_count(PARIS) == 1000


def annex_b_units(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into its NAL units, each with its 3-byte start code."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


@pytest.mark.skipif(not PARIS.is_file(), reason="../shared/data/hevc/paris-ra-wpp.bin not present")
def test_stream_starting_at_cra_decodes_rasl_without_output(oracle: Path, tmp_path: Path) -> None:
    """Cut paris at its second CRA (parameter sets kept): its RASL pictures are decoded but not output."""
    units = annex_b_units(PARIS.read_bytes())
    types = [(unit[3] >> 1) & 0x3F for unit in units]
    cra = [i for i, t in enumerate(types) if t == CRA_TYPE][1]
    assert types[:3] == [32, 33, 34]
    path = tmp_path / "from-cra.bin"
    path.write_bytes(b"".join(units[:3] + units[cra:]))
    dump = libde265_dump(oracle, path)
    pictures = dump.pictures
    assert dump.skipped == [] and pictures[0].nal_unit_type == CRA_TYPE
    leading = list(itertools.takewhile(lambda p: p.nal_unit_type in RASL_TYPES, pictures[1:]))
    assert leading and all(p.poc < pictures[0].poc for p in leading)
    assert not any(p.output for p in leading) and all(p.integrity != 0 for p in leading)
    rest = pictures[1 + len(leading) :]
    assert all(p.output and p.integrity == 0 for p in [pictures[0], *rest])
    assert sum(p.output for p in pictures) == ffmpeg_frame_count(path)
