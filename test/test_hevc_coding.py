"""The per-block coding structure the Python parser returns with ``motion=True``."""

import numpy as np
import pytest
from hevc_streams import shared_stream

from arseg_ros.codec import HevcParser
from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.codec.hevc import motion_field
from arseg_ros.data.synthetic import panning_clip


def parse(data: bytes):
    parser = HevcParser(motion=True)
    return parser.feed(data) + parser.flush()


def check_consistent(picture) -> None:
    coding, motion = picture.coding, picture.motion
    hb, wb = -(-picture.height // 4), -(-picture.width // 4)
    names = ("log2_cb_size", "pred_mode", "part_mode", "merge_flag")
    assert {k: v.shape for k, v in coding.items()} == dict.fromkeys(names, (hb, wb))
    inter = (motion["pred_flag"][0] | motion["pred_flag"][1]).astype(bool)
    np.testing.assert_array_equal(inter, coding["pred_mode"] >= 2)
    merged, skipped = coding["merge_flag"].astype(bool), coding["pred_mode"] == 3
    assert not (merged & ~inter).any() and not (skipped & ~merged).any()
    field = motion_field(picture)
    np.testing.assert_array_equal(field.skip, skipped)
    np.testing.assert_array_equal(field.merge, merged)
    assert coding["log2_cb_size"].min() >= 3 and coding["log2_cb_size"].max() <= 6
    assert coding["part_mode"].max() <= 7 and coding["pred_mode"].min() >= 1


def test_intra_and_inter_pictures_of_an_x265_stream():
    clip = panning_clip(128, 96, 8, velocity=(2.0, 1.0), seed=3)
    data = b"".join(p.data for p in encode_frames(clip.frames, EncoderSettings(keyint=4, bframes=0)))
    pictures = parse(data)
    assert len(pictures) == 8
    for picture in pictures:
        check_consistent(picture)
    assert np.all(pictures[0].coding["pred_mode"] == 1) and np.all(pictures[4].coding["pred_mode"] == 1)
    assert np.any(pictures[1].coding["pred_mode"] == 3)


def test_paris_coding_structure_has_amp_partitions():
    path = shared_stream("paris-ra-wpp.bin")
    if path is None:
        pytest.skip("../shared/data/hevc/paris-ra-wpp.bin not present")
    pictures = parse(path.read_bytes())
    assert len(pictures) == 1000
    for picture in pictures[:50]:
        check_consistent(picture)
    parts = np.concatenate([p.coding["part_mode"].ravel() for p in pictures[:50]])
    assert np.isin(parts, [4, 5, 6, 7]).any()
    merged = np.concatenate([p.coding["merge_flag"].ravel() for p in pictures[1:50]]).astype(bool)
    modes = np.concatenate([p.coding["pred_mode"].ravel() for p in pictures[1:50]])
    assert (merged & (modes == 2)).any() and (~merged & (modes == 2)).any()  # merged and AMVP PUs, not skipped
