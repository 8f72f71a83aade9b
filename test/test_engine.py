"""The streaming engine on generated H.264/HEVC streams: schedule, order, stamps and recovery."""

import io

import av
import numpy as np
import pytest
import torch

from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.codec.packets import Packet
from arseg_ros.data.synthetic import panning_clip
from arseg_ros.engine import EngineConfig, StreamSegmenter
from arseg_ros.labels import CAMVID
from arseg_ros.model import ModelConfig, build_model
from arseg_ros.model.base import normalize

W, H = 128, 96
FRAME_NS = 33_333_333


def encode(frames: np.ndarray, codec: str = "h264", params: str = "keyint=12:bframes=0:ref=1") -> list[Packet]:
    """Encode RGB frames into packets in decode order (``params`` override the encoder defaults).

    Each packet is stamped with its own picture's presentation time.
    """
    packets = encode_frames(frames, EncoderSettings(codec=codec, extra=params))
    return [Packet(codec, p.data, p.index * FRAME_NS + 1_000_000_000, "camera", p.key) for p in packets]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="bisenet18", labels=CAMVID)).eval()


@pytest.fixture(scope="module")
def clip():
    return panning_clip(W, H, 24, velocity=(2.0, 1.0), seed=5)


@pytest.fixture(scope="module")
def h264_packets(clip):
    return encode(clip.frames)


def run(model, packets, **config):
    engine = StreamSegmenter(model, EngineConfig(device="cpu", **config))
    results = []
    for p in packets:
        results += engine.process(p)
    return results + engine.flush(), engine


def test_schedule_follows_the_gop(model, h264_packets):
    results, engine = run(model, h264_packets)
    assert [r.kind for r in results] == ["hr" if i % 12 == 0 else "lr" for i in range(24)]
    assert [r.distance for r in results] == [i % 12 for i in range(24)]
    assert engine.stats["hr_keyframe"] == 2 and engine.stats["lr"] == 22
    assert all(r.labels.shape == (H, W) and r.labels.dtype == np.uint8 for r in results)
    assert set(results[5].timings) == {"decode", "motion", "accumulation", "inference", "total"}


def test_hr_every_n_forces_hr_frames(model, h264_packets):
    results, engine = run(model, h264_packets, hr_every_n=4)
    assert [i for i, r in enumerate(results) if r.kind == "hr"] == [0, 4, 8, 12, 16, 20]
    assert engine.stats["hr_hr_every_n"] == 4


def test_output_order_and_stamps_follow_presentation_with_b_frames(model, clip):
    packets = encode(clip.frames, params="keyint=12:bframes=2:b-pyramid=none:ref=1")
    decode_stamps = [p.stamp_ns for p in packets]
    assert decode_stamps != sorted(decode_stamps), "the stream should reorder"
    results, _ = run(model, packets)
    assert [r.stamp_ns for r in results] == sorted(decode_stamps)
    assert all(r.frame_id == "camera" for r in results)


def test_hr_mode_equals_the_hr_network_frame_by_frame(model, h264_packets):
    results, _ = run(model, h264_packets[:6], mode="hr")
    container = av.open(io.BytesIO(b"".join(p.data for p in h264_packets[:6])), format="h264")
    for result, frame in zip(results, container.decode(video=0), strict=True):
        x = normalize(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255.0)
        with torch.no_grad():
            expected = model.hr(x).argmax(1)[0].to(torch.uint8).numpy()
        np.testing.assert_array_equal(result.labels, expected)
        assert result.kind == "hr"


def test_lr_mode_runs_the_constant_baseline(model, h264_packets):
    results, engine = run(model, h264_packets[:4], mode="lr")
    assert [r.kind for r in results] == ["lr"] * 4 and engine.stats["hr"] == 0


def joined_mid_gop(packets: list[Packet], start: int) -> list[Packet]:
    """Return the stream from packet ``start`` on, with the parameter sets of the first keyframe in front of it."""
    first = packets[0].data
    headers = first[: first.find(b"\x00\x00\x01\x65") + 1]
    joined = Packet("h264", headers + packets[start].data, packets[start].stamp_ns, "camera", False)
    return [joined, *packets[start + 1 :]]


def test_stream_starting_mid_gop_waits_for_the_keyframe(model, h264_packets):
    results, engine = run(model, joined_mid_gop(h264_packets, 5))
    assert results[0].kind == "hr" and results[0].stamp_ns == h264_packets[12].stamp_ns
    assert engine.stats["before_first_keyframe"] == 7


def test_stream_starting_mid_gop_with_hr_start(model, h264_packets):
    results, engine = run(model, joined_mid_gop(h264_packets, 5), start="hr")
    assert results[0].kind == "hr" and results[0].stamp_ns == h264_packets[5].stamp_ns
    assert results[1].kind == "lr"
    assert engine.stats["hr_chain_broken"] == 1


def test_lost_packet_breaks_the_chain_until_the_next_hr(model, h264_packets):
    engine = StreamSegmenter(model, EngineConfig(device="cpu"))
    results = []
    for i, p in enumerate(h264_packets[:12]):
        if i == 5:
            engine.mark_discontinuity()
            continue
        results += engine.process(p)
    results += engine.flush()
    kinds = {r.stamp_ns: r.kind for r in results}
    assert kinds[h264_packets[6].stamp_ns] == "hr"
    assert kinds[h264_packets[7].stamp_ns] == "lr"
    assert engine.stats["hr_chain_broken"] == 1


def test_corrupt_packets_are_counted_not_fatal(model, h264_packets):
    rng = np.random.default_rng(0)
    packets = list(h264_packets)
    for i in (3, 7):
        data = bytearray(packets[i].data)
        data[8:] = rng.integers(0, 256, len(data) - 8, dtype=np.uint8).tobytes()
        packets[i] = Packet("h264", bytes(data), packets[i].stamp_ns, "camera", False)
    results, engine = run(model, packets)
    assert len(results) >= 20
    assert results[12].kind == "hr" or engine.stats["decode_error"] > 0


def test_resolution_change_resets(model, clip):
    small = panning_clip(96, 64, 6, velocity=(1.0, 0.0), seed=6)
    packets = encode(clip.frames[:6]) + encode(small.frames)
    results, engine = run(model, packets)
    assert engine.stats["resolution_change"] == 1
    assert [r.labels.shape for r in results] == [(H, W)] * 6 + [(64, 96)] * 6
    assert results[6].kind == "hr"


def test_codec_change_resets_the_stream(model, clip, h264_packets):
    packets = h264_packets[:4] + encode(clip.frames[:4], codec="hevc", params="keyint=12:bframes=0")
    results, engine = run(model, packets)
    assert engine.stats["codec_change"] == 1
    assert [r.kind for r in results] == ["hr", "lr", "lr", "lr", "hr", "lr", "lr", "lr"]


@pytest.mark.parametrize(
    ("params", "hr_frames"),
    [
        ("keyint=12:bframes=0", [0, 12]),
        ("keyint=12:bframes=3:b-pyramid=1:open-gop=0", [0, 12]),
        # open GOP: the leading pictures 9..11 of the CRA at 12 are shown before it, so they run HR
        ("keyint=12:bframes=3:b-pyramid=1:open-gop=1", [0, 9, 10, 11, 12]),
    ],
)
def test_hevc_schedule_and_stamps_with_bitstream_motion(model, clip, params, hr_frames):
    packets = encode(clip.frames, codec="hevc", params=params)
    results, engine = run(model, packets)
    assert [r.stamp_ns for r in results] == sorted(p.stamp_ns for p in packets)
    assert [i for i, r in enumerate(results) if r.kind == "hr"] == hr_frames
    assert engine.stats["parse_error"] == 0 and engine.stats["hr_no_motion"] == 0
    assert all(r.timings["motion"] > 0 for r in results if r.kind == "lr")


def test_latest_policy_skips_stale_lr_work_but_keeps_the_chain(model, h264_packets):
    engine = StreamSegmenter(model, EngineConfig(device="cpu", lag_policy="latest"))
    results = []
    for i, p in enumerate(h264_packets):
        results += engine.process(p, stale=i % 2 == 1)
    results += engine.flush()
    assert [r.kind for r in results[:4]] == ["hr", "skipped", "lr", "skipped"]
    assert results[1].labels is None and engine.stats["skipped"] == 12
    assert results[12].kind == "hr"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fast"}, "unknown mode"),
        ({"lr_scale": 0.0}, "lr_scale"),
        ({"hr_every_n": -1}, "hr_every_n"),
        ({"lag_policy": "drop"}, "lag policy"),
        ({"start": "now"}, "start policy"),
        ({"decoder_threads": -1}, "decoder_threads"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**kwargs)


def test_decoder_slice_threads_give_the_same_pictures_without_delay(model, clip):
    """Decoding with slice threads gives the same pictures as with one thread, and none of them later.

    x265 codes wavefronts by default, so FFmpeg decodes rows in parallel.
    """
    packets = encode(clip.frames[:13], codec="hevc", params="keyint=12:bframes=0:ref=1:wpp=1")
    single, _ = run(model, packets, mode="hr", decoder_threads=1)
    threaded = StreamSegmenter(model, EngineConfig(device="cpu", mode="hr", decoder_threads=3))
    for i, packet in enumerate(packets):
        released = threaded.process(packet)
        assert [r.packet_index for r in released] == [i]
        np.testing.assert_array_equal(released[0].labels, single[i].labels)
    assert threaded.flush() == []


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_packets_without_a_nal_unit_are_dropped_before_the_decoder(model, clip, h264_packets, codec):
    packets = h264_packets if codec == "h264" else encode(clip.frames, codec="hevc", params="keyint=12:bframes=0")
    clean, _ = run(model, packets)
    junk = [b"", b"\x00\x00\x01", bytes(range(3, 60)), b"\x00\x00\x01\xff\xff\xff"]
    stamp = packets[5].stamp_ns
    hostile = packets[:5] + [Packet(codec, data, stamp, "camera", None) for data in junk] + packets[5:]
    results, engine = run(model, hostile)
    assert engine.stats["rejected_no_nal_unit"] == len(junk)
    assert engine.stats["decode_error"] == 0 and engine.stats["parse_error"] == 0
    assert [r.stamp_ns for r in results] == [r.stamp_ns for r in clean]
    assert [r.kind for r in results] == [r.kind for r in clean]
    for got, want in zip(results, clean, strict=True):
        np.testing.assert_array_equal(got.labels, want.labels)
