"""HEVC header layers (``arseg_ros.codec.hevc``): FFmpeg trace parity, POC/RPS/reference lists and input handling.

Input handling covers chunked and length-prefixed input, and robustness against corrupt input.

The parity tests compare every traced field (name, value, bit position) of every VPS, SPS, PPS and slice
segment header with FFmpeg's ``trace_headers`` (``hevc_streams.trace_headers``) for the whole generated
``MATRIX`` and the shared HM stream ``paris-ra-wpp.bin``. Syntax that no encoder here produces (tiles, long-term
pictures, list modification, dependent slice segments) is covered by hand-written headers from a small bit
writer, checked against ``trace_headers`` the same way.
"""

from __future__ import annotations

import io
import itertools
import random
from pathlib import Path

import av
import pytest
from hevc_streams import MATRIX, StreamSpec, TracedNal, annexb_nal_units, encode, trace_headers

from arseg_ros.codec import HevcParseError, HevcParser, Picture, dump_headers
from arseg_ros.data.synthetic import panning_clip

HEADER_TITLES = {"Video Parameter Set", "Sequence Parameter Set", "Picture Parameter Set", "Slice Segment Header"}
NAL_VPS, NAL_SPS, NAL_PPS, NAL_CRA = 32, 33, 34, 21
IRAP_TYPES = set(range(16, 24))


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def parse(data: bytes, trace: bool = False) -> list[Picture]:
    parser = HevcParser(trace=trace)
    return parser.feed(data) + parser.flush()


def summary(pictures: list[Picture]) -> list[tuple]:
    """Return what must not depend on how the input was delivered."""
    return [
        (
            p.decode_index,
            p.poc,
            p.nal_unit_type,
            p.decodable,
            p.dpb_id,
            tuple(
                (s.slice_type, s.address, s.qp, tuple(s.ref_l0), tuple(s.ref_l1), tuple(s.substream_offsets))
                for s in p.slices
            ),
        )
        for p in pictures
    ]


def assert_same_headers(ours: list, theirs: list[TracedNal]) -> None:
    """Field-by-field equality of our dump and FFmpeg's trace (header NAL units only)."""
    theirs = [n for n in theirs if n.title in HEADER_TITLES]
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert (a.title, a.nal_unit_type) == (b.title, b.nal_unit_type), f"NAL unit {index}"
        got = [(f.position, f.name, f.value) for f in a.fields]
        want = [(f.position, f.name, f.value) for f in b.fields]
        assert got == want, f"NAL unit {index} ({a.title})"


# ----------------------------------------------------------------------------------------------- trace parity


@pytest.mark.parametrize("name", [spec.name for spec in MATRIX])
def test_matrix_headers_match_trace_headers(
    name: str, hevc_matrix: dict[str, Path], hevc_matrix_traces: dict[str, list[TracedNal]]
) -> None:
    assert_same_headers(dump_headers(hevc_matrix[name].read_bytes()), hevc_matrix_traces[name])


def test_paris_headers_match_trace_headers(paris_stream: Path, paris_traces: list[TracedNal]) -> None:
    """All 1000 pictures of the HM stream: inter-RPS prediction, WPP entry points, cabac_init_flag, CRA + RASL."""
    dumps = dump_headers(paris_stream.read_bytes())
    assert_same_headers(dumps, paris_traces)
    names = {f.name for d in dumps for f in d.fields}
    assert {"inter_ref_pic_set_prediction_flag", "delta_rps_sign", "entry_point_offset_minus1[3]"} <= names


# ------------------------------------------------------------------------------------ POC, RPS, reference lists


def encode_mp4(x265_params: str, frames: int = 20, width: int = 128, height: int = 96) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx265", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"x265-params": f"log-level=error:{x265_params}"}
        for index, rgb in enumerate(panning_clip(width, height, frames).frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def hvcc_parameter_sets(extradata: bytes) -> tuple[bytes, int]:
    """Return an hvcC record's parameter-set NAL units as one 2-byte-length-prefixed unit, and its NAL length size."""
    length_size = (extradata[21] & 3) + 1
    out, pos = bytearray(), 23
    for _ in range(extradata[22]):
        count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            out += extradata[pos : pos + 2 + size]
            pos += 2 + size
    return bytes(out), length_size


@pytest.mark.parametrize(
    "params",
    [
        "keyint=12:bframes=3:b-pyramid=1",
        "keyint=8:min-keyint=8:scenecut=0:bframes=3:b-adapt=0:open-gop=1",
        "keyint=8:min-keyint=8:scenecut=0:bframes=2:open-gop=0",
        "temporal-layers=3:bframes=3:b-adapt=0",
    ],
)
def test_poc_follows_presentation_order(params: str) -> None:
    """MP4 packets (length-prefixed, decode order): POC order is the presentation order PyAV reports.

    POC minus frame index is constant within each coded video sequence, and every reference list is resolved.
    """
    data = encode_mp4(params)
    parser = HevcParser()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        parameter_sets, length_size = hvcc_parameter_sets(bytes(stream.codec_context.extradata))
        assert parser.feed_access_unit(parameter_sets, 2) == []
        packets = sorted((p for p in container.demux(stream) if p.size), key=lambda p: p.dts)
        presentation = sorted(p.pts for p in packets)
        frame_step = min(b - a for a, b in itertools.pairwise(presentation))
        pictures, frame_index = [], []
        for packet in packets:
            got = parser.feed_access_unit(bytes(packet), length_size)
            assert len(got) == 1
            pictures += got
            frame_index.append(packet.pts // frame_step)
    with av.open(io.BytesIO(data)) as container:
        assert len(list(container.decode(video=0))) == len(pictures)
    offset = None
    for picture, index in zip(pictures, frame_index, strict=True):
        if picture.nal_unit_type in (19, 20):
            offset = picture.poc - index
        assert picture.poc - index == offset, (picture.poc, index)
        for segment in picture.slices:
            for ref in segment.ref_l0 + segment.ref_l1:
                assert not ref.missing and ref.poc != picture.poc
    assert any(p.slice_types == [0] for p in pictures) == ("bframes=" in params)


def test_low_delay_p_lists_are_previous_pictures(hevc_matrix: dict[str, Path]) -> None:
    """ref=3, no B-frames: RefPicList0 of picture n is n-1, n-2, n-3 (nearest first), all short-term."""
    pictures = parse(hevc_matrix["ref3"].read_bytes())
    assert [p.poc for p in pictures] == list(range(len(pictures)))
    for p in pictures[1:]:
        assert p.slice_types == [1]
        assert p.ref_pocs_l0 == [list(range(p.poc - 1, max(p.poc - 4, -1), -1))]
        assert p.ref_pocs_l1 == [[]]
        assert all(not r.long_term and not r.missing for r in p.slices[0].ref_l0)


def test_reference_entries_point_to_dpb_pictures(paris_stream: Path) -> None:
    """Every reference entry names the DPB picture (dpb_id) decoded earlier with that POC; no placeholders."""
    pictures = parse(paris_stream.read_bytes())
    assert len(pictures) == 1000
    by_id = {}
    for p in pictures:
        for s in p.slices:
            assert s.ref_pocs_l0 == [by_id[r.dpb_id] for r in s.ref_l0]
            assert s.ref_pocs_l1 == [by_id[r.dpb_id] for r in s.ref_l1]
            if s.slice_type == 0:
                assert s.ref_l1, "B slice without RefPicList1"
        assert p.rps["generated_missing"] == 0
        by_id[p.dpb_id] = p.poc
    assert sorted(p.poc for p in pictures) == list(range(1000))


def test_cra_at_stream_start_skips_rasl(paris_stream: Path) -> None:
    """Starting at a CRA (HandleCraAsBlaFlag): its RASL pictures are not decodable, the rest decodes normally."""
    nals = annexb_nal_units(paris_stream.read_bytes())
    parameter_sets = [n for n in nals[:10] if nal_type(n) in (NAL_VPS, NAL_SPS, NAL_PPS)]
    first_cra = next(i for i, n in enumerate(nals) if nal_type(n) == NAL_CRA)
    pictures = parse(annexb(parameter_sets + nals[first_cra:]))
    assert pictures[0].nal_unit_type == NAL_CRA and pictures[0].no_rasl_output_flag
    rasl = [p for p in pictures if p.nal_unit_type in (8, 9)]
    leading = [p for p in rasl if p.poc < pictures[0].poc]
    assert leading and all(not p.decodable and p.ref_pocs_l0 == [[]] for p in leading)
    later = [p for p in pictures if p.poc > pictures[0].poc]
    assert all(p.decodable and p.rps["generated_missing"] == 0 for p in later)


def test_new_sps_content_activates_at_irap(hevc_matrix: dict[str, Path]) -> None:
    """Two streams back to back re-use SPS/PPS id 0 with new content: it becomes active at the second IDR."""
    first, second = hevc_matrix["bframes3"].read_bytes(), hevc_matrix["size_334x198"].read_bytes()
    pictures = parse(first + second)
    n = len(parse(first))
    assert {(p.width, p.height, p.cropped_width) for p in pictures[:n]} == {(160, 120, 160)}
    assert {(p.width, p.height, p.cropped_width, p.cropped_height) for p in pictures[n:]} == {(336, 200, 334, 198)}
    assert pictures[n].is_irap and pictures[n].poc == 0 and pictures[n].no_rasl_output_flag


def test_unsupported_chroma_format(tmp_path: Path) -> None:
    path = encode(StreamSpec(name="yuv422", width=64, height=64, frames=2, pix_fmt="yuv422p"), tmp_path)
    with pytest.raises(HevcParseError) as info:
        parse(path.read_bytes())
    assert info.value.kind == "unsupported" and "4:2:2" in str(info.value)


# ----------------------------------------------------------------------------------------- input delivery


def test_chunked_feeding_equals_whole(hevc_matrix: dict[str, Path], paris_stream: Path) -> None:
    rng = random.Random(1234)
    for data, one_byte in ((hevc_matrix["slices3"].read_bytes(), True), (paris_stream.read_bytes()[:200_000], False)):
        whole = summary(parse(data))
        parser, pictures, pos = HevcParser(), [], 0
        while pos < len(data):
            step = rng.choice([1, 2, 3, 5, 17, 256, 4096, 70_000])
            pictures += parser.feed(data[pos : pos + step])
            pos += step
        assert summary(pictures + parser.flush()) == whole
        if one_byte:
            parser, pictures = HevcParser(), []
            for i in range(len(data)):
                pictures += parser.feed(data[i : i + 1])
            assert summary(pictures + parser.flush()) == whole


def access_units(nals: list[bytes]) -> list[list[bytes]]:
    """Group NAL units into access units (a new one at a parameter set/AUD/prefix SEI or first slice segment)."""
    units: list[list[bytes]] = []
    seen_slice = False
    for n in nals:
        t = nal_type(n)
        starts = t in (32, 33, 34, 35, 39) or (t < 32 and n[2] & 0x80)
        if not units or (starts and seen_slice):
            units.append([])
            seen_slice = False
        units[-1].append(n)
        seen_slice |= t < 32
    return units


@pytest.mark.parametrize("length_size", [2, 4])
def test_length_prefixed_access_units_equal_annexb(hevc_matrix: dict[str, Path], length_size: int) -> None:
    data = hevc_matrix["slices2"].read_bytes()
    parser, pictures = HevcParser(), []
    for unit in access_units(annexb_nal_units(data)):
        prefixed = b"".join(len(n).to_bytes(length_size, "big") + n for n in unit)
        pictures += parser.feed_access_unit(prefixed, length_size)
    assert summary(pictures + parser.flush()) == summary(parse(data))


def test_annexb_access_units_equal_stream(hevc_matrix: dict[str, Path]) -> None:
    data = hevc_matrix["bframes3"].read_bytes()
    parser, pictures = HevcParser(), []
    for unit in access_units(annexb_nal_units(data)):
        pictures += parser.feed_access_unit(annexb(unit))
    assert summary(pictures) == summary(parse(data))


def check_substream_offsets(data: bytes) -> int:
    """Entry points count escaped bytes; substream_offsets must be RBSP offsets (emulation prevention removed).

    Returns how many slice segments had emulation-prevention bytes before one of their entry points.
    """
    nals = annexb_nal_units(data)
    checked = 0
    for p in parse(data):
        for s in p.slices:
            removed, zeros, escaped_of_rbsp = [], 0, []
            for i, b in enumerate(nals[s.nal_index]):
                if zeros >= 2 and b == 3:
                    removed.append(i)
                    zeros = 0
                    continue
                escaped_of_rbsp.append(i)
                zeros = zeros + 1 if b == 0 else 0
            start = escaped_of_rbsp[s.slice_data_byte_offset]
            expected = [s.slice_data_byte_offset]
            for delta in s.entry_point_offset_minus1:
                start += delta + 1
                expected.append(start - sum(1 for r in removed if r < start))
            assert s.substream_offsets == expected
            checked += expected[-1] != s.slice_data_byte_offset + start - escaped_of_rbsp[s.slice_data_byte_offset]
    return checked


def test_substream_offsets_follow_emulation_prevention(paris_stream: Path) -> None:
    check_substream_offsets(annexb(annexb_nal_units(paris_stream.read_bytes())[:400]))
    assert check_substream_offsets(handmade_stream()) > 0


# ---------------------------------------------------------------------------------------------- robustness


def run_to_end(parser: HevcParser, data: bytes) -> tuple[list[Picture], list[HevcParseError]]:
    pictures, errors = [], []
    for call in (lambda: parser.feed(data), parser.flush):
        try:
            pictures += call()
        except HevcParseError as e:
            errors.append(e)
            pictures += e.pictures
    return pictures, errors


def test_error_attributes_and_recovery(hevc_matrix: dict[str, Path]) -> None:
    """A corrupt slice header raises with its location; the parser resumes at the next IRAP picture."""
    nals = annexb_nal_units(hevc_matrix["keyint12"].read_bytes())
    slices = [i for i, n in enumerate(nals) if nal_type(n) < 32]
    broken = list(nals)
    broken[slices[2]] = broken[slices[2]][:3]
    parser = HevcParser()
    pictures, errors = run_to_end(parser, annexb(broken))
    assert len(errors) == 1
    e = errors[0]
    assert isinstance(e, ValueError) and e.kind == "truncated"
    assert e.nal_index == slices[2] and e.picture == 2 and e.slice == 0 and e.bit_position >= 16
    whole = parse(hevc_matrix["keyint12"].read_bytes())
    irap = next(p.decode_index for p in whole if p.is_irap and p.decode_index > 2)
    assert [p.poc for p in pictures] == [p.poc for p in whole if p.decode_index < 2 or p.decode_index >= irap]
    assert parser.stats()["errors"] == 1


def test_missing_parameter_sets(hevc_matrix: dict[str, Path]) -> None:
    nals = annexb_nal_units(hevc_matrix["bframes3"].read_bytes())
    for dropped, failing in ((NAL_SPS, {NAL_PPS}), (NAL_PPS, IRAP_TYPES)):
        data = annexb([n for n in nals if nal_type(n) != dropped])
        pictures, errors = run_to_end(HevcParser(), data)
        assert pictures == []
        assert errors and errors[0].kind == "missing parameter set"
        assert nal_type([n for n in nals if nal_type(n) != dropped][errors[0].nal_index]) in failing


def test_stream_starting_mid_gop(hevc_matrix: dict[str, Path]) -> None:
    """Without its first IRAP picture a stream decodes from the next IRAP on; the pictures before are dropped."""
    nals = annexb_nal_units(hevc_matrix["keyint12"].read_bytes())
    first_slice = next(i for i, n in enumerate(nals) if nal_type(n) < 32)
    parser = HevcParser()
    pictures, errors = run_to_end(parser, annexb(nals[:first_slice] + nals[first_slice + 1 :]))
    assert errors == [] and pictures and pictures[0].is_irap
    second_irap = [p.decode_index for p in parse(hevc_matrix["keyint12"].read_bytes()) if p.is_irap][1]
    assert parser.stats()["dropped_pictures"] == second_irap - 1
    assert pictures[0].decode_index == second_irap - 1
    refs = [r for p in pictures if p.decodable for s in p.slices for r in s.ref_l0 + s.ref_l1]
    assert refs and not any(r.missing for r in refs)


def test_empty_and_garbage_input() -> None:
    parser = HevcParser()
    assert parser.feed(b"") == [] and parser.flush() == []
    rng = random.Random(7)
    for size in (1, 2, 3, 5, 100, 5000):
        garbage = bytes(rng.randrange(256) for _ in range(size))
        for data in (garbage, b"\x00\x00\x01" + garbage, garbage.replace(b"\x00", b"\x00\x00\x01")):
            pictures, _ = run_to_end(HevcParser(), data)
            assert pictures == []


@pytest.mark.parametrize("name", ["bframes3", "slices2", "open_gop", "hrd_aud_repeat_headers"])
def test_seeded_corruptions_never_crash(name: str, hevc_matrix: dict[str, Path]) -> None:
    """Bit flips, truncated NAL units and dropped NAL units: HevcParseError or recovery, never a crash or hang.

    The same parser then decodes the intact stream.
    """
    data = hevc_matrix[name].read_bytes()
    nals = annexb_nal_units(data)
    reference = summary(parse(data))
    rng = random.Random(name)
    for trial in range(60):
        corrupt = bytearray(data)
        if trial % 3 == 0:
            for _ in range(rng.randint(1, 8)):
                corrupt[rng.randrange(len(corrupt))] ^= 1 << rng.randrange(8)
        elif trial % 3 == 1:
            k = rng.randrange(len(nals))
            cut = nals[k][: rng.randrange(1, len(nals[k]) + 1)]
            corrupt = bytearray(annexb([*nals[:k], cut, *nals[k + 1 :]]))
        else:
            k = rng.randrange(len(nals))
            corrupt = bytearray(annexb(nals[:k] + nals[k + 1 :]))
        parser = HevcParser()
        pictures, errors = run_to_end(parser, bytes(corrupt))
        assert len(pictures) <= len(reference) + 2
        assert all(isinstance(e.kind, str) and e.nal_index >= 0 for e in errors)
        after, after_errors = run_to_end(parser, data)
        assert after_errors == []
        assert [p[1:4] for p in summary(after)] == [p[1:4] for p in reference]


# -------------------------------------------------------------- hand-written headers for syntax x265 never emits


class BitWriter:
    """Bits of a hand-written header, appended one syntax element at a time."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, nal_unit_type: int, payload: bytes = b"") -> bytes:
        """Return these bits as a NAL unit, with emulation prevention.

        The unit is the NAL unit header, these bits, a one bit and zero bits to the byte boundary
        (rbsp_trailing_bits or byte_alignment), then ``payload``.
        """
        bits = [0] + [(nal_unit_type >> (5 - i)) & 1 for i in range(6)] + [0] * 6 + [0, 0, 1] + self.bits + [1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)) + payload
        out, zeros = bytearray(), 0
        for b in raw:
            if zeros >= 2 and b <= 3:
                out.append(3)
                zeros = 0
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        return bytes(out)


def ptl(w: BitWriter) -> None:
    w.u(2, 0).u(1, 0).u(5, 1).u(32, 0x60000000).u(4, 0b1001).u(43, 0).u(1, 0).u(8, 93)


def handmade_stream() -> bytes:
    """Return a hand-made 128x64 stream with CTB 16.

    It has 2x2 explicit tiles, dependent slice segments, long-term pictures (from the SPS and coded), reference
    list modification, Log2ParMrgLevel 4, a slice header extension and num_extra_slice_header_bits 1.
    """
    vps = BitWriter().u(4, 0).u(1, 1).u(1, 1).u(6, 0).u(3, 0).u(1, 1).u(16, 0xFFFF)
    ptl(vps)
    vps.u(1, 1).ue(5).ue(0).ue(0).u(6, 0).ue(0).u(1, 0).u(1, 0)
    sps = BitWriter().u(4, 0).u(3, 0).u(1, 1)
    ptl(sps)
    sps.ue(0).ue(1).ue(128).ue(64).u(1, 0).ue(0).ue(0).ue(4)  # id, 4:2:0, size, no window, 8 bit, lsb 8 bits
    sps.u(1, 1).ue(5).ue(0).ue(0)  # sub-layer ordering: dpb 6
    sps.ue(0).ue(1).ue(0).ue(2).ue(1).ue(1)  # min CB 8, CTB 16, TB 4..16, depths
    sps.u(1, 0).u(1, 0).u(1, 1).u(1, 0)  # scaling list, amp, sao, pcm
    sps.ue(2)  # two short-term RPS in the SPS
    sps.ue(1).ue(0).ue(0).u(1, 1)  # RPS 0: {-1}
    sps.u(1, 1).ue(0).u(1, 1).u(1, 1).u(1, 1)  # RPS 1: predicted from RPS 0 with deltaRps = -1: {-1, -2}
    sps.u(1, 1).ue(2).u(8, 0).u(1, 0).u(8, 1).u(1, 1)  # long-term in the SPS: POC LSBs 0 (unused), 1 (used)
    sps.u(1, 1).u(1, 0).u(1, 0).u(1, 0)  # TMVP, strong intra smoothing, no VUI, no extension
    pps = BitWriter().ue(0).ue(0).u(1, 1).u(1, 0).u(3, 1).u(1, 0).u(1, 0).ue(1).ue(0).se(0)
    pps.u(1, 0).u(1, 0).u(1, 0).se(0).se(0).u(1, 0).u(1, 0).u(1, 0).u(1, 0)
    pps.u(1, 1).u(1, 0)  # tiles, no WPP
    pps.ue(1).ue(1).u(1, 0).ue(4).ue(1).u(1, 1)  # 2x2 tiles, column widths 5+3, row heights 2+2
    pps.u(1, 1).u(1, 1).u(1, 1).u(1, 0).se(-1).se(2)  # deblocking control + override
    pps.u(1, 0).u(1, 1).ue(2).u(1, 1).u(1, 0)  # lists modification, PML 4, header extension

    def slice_header(nal_unit_type: int, poc: int, first: bool, dependent: bool = False, address: int = 0) -> bytes:
        w = BitWriter().u(1, int(first))
        if nal_unit_type in IRAP_TYPES:
            w.u(1, 0)
        w.ue(0)
        if not first:
            w.u(1, int(dependent)).u(5, address)
        if not dependent:
            w.u(1, 0)  # slice_reserved_flag[0]
            if nal_unit_type == 19:
                w.ue(2)
            else:
                w.ue(1).u(8, poc % 256)
                if poc == 3:
                    # Coded RPS predicted from SPS RPS 1 ({-1, -2}) with deltaRps = -1: candidates -2, -3, -1;
                    # keep only -1 (POC 2). POCs 1 and 0 become long-term below.
                    w.u(1, 0).u(1, 1).ue(0).u(1, 1).ue(0).u(1, 0).u(1, 0).u(1, 0).u(1, 0).u(1, 1)
                    w.ue(1).ue(1)  # one long-term picture from the SPS, one coded
                    w.u(1, 0).u(1, 0)  # lt_idx_sps[0] = 0 (LSB 0, not used by the picture), no MSB
                    w.u(8, 1).u(1, 1).u(1, 1).ue(0)  # poc_lsb_lt[1] = 1, used, delta_poc_msb_cycle_lt 0
                else:
                    w.u(1, 1).u(1, int(poc >= 2)).ue(0).ue(0)  # SPS RPS 0 or 1, no long-term pictures
                w.u(1, 1)  # slice_temporal_mvp_enabled_flag
            w.u(1, 1).u(1, 1)  # SAO
            if nal_unit_type != 19:
                w.u(1, 1).ue(2)  # override: 3 active references
                if poc >= 2:  # NumPicTotalCurr == 2: list_entry_l0 {1, 0, 1} of one bit each
                    w.u(1, 1).u(1, 1).u(1, 0).u(1, 1)
                w.ue(0).ue(2)  # collocated_ref_idx (collocated_from_l0 inferred in P slices), merge candidates
            w.se(-3).u(1, 1).u(1, 0).se(1).se(-1).u(1, 1)  # qp, deblocking override, loop filter across slices
        w.ue(1 if first else 0)
        if first:
            w.ue(4).u(5, 9)  # one entry point of 10 bytes
        w.ue(2).u(8, 0xAB).u(8, 0xCD)
        # Slice data with zero runs, so that emulation prevention shifts the entry point.
        return w.nal(nal_unit_type, payload=bytes([0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 3, *range(1, 16)]))

    nals = [vps.nal(NAL_VPS), sps.nal(NAL_SPS), pps.nal(NAL_PPS), slice_header(19, 0, True)]
    for poc in (1, 2, 3):
        nals += [slice_header(1, poc, True), slice_header(1, poc, False, dependent=True, address=20)]
    return annexb(nals)


def test_handmade_headers_match_trace_headers() -> None:
    data = handmade_stream()
    assert_same_headers(dump_headers(data), trace_headers(data))
    pictures = parse(data)
    assert [p.poc for p in pictures] == [0, 1, 2, 3]
    assert [len(p.slices) for p in pictures] == [1, 2, 2, 2]
    p2, p3 = pictures[2], pictures[3]
    assert p2.ref_pocs_l0 == [[0, 1, 0], [0, 1, 0]]  # list_entry_l0 {1, 0, 1} over {1, 0}
    assert p3.rps["lt_curr"] == [1] and p3.rps["lt_foll"] == [0] and p3.rps["st_curr_before"] == [2]
    assert [(r.poc, r.long_term) for r in p3.slices[0].ref_l0] == [(1, True), (2, False), (1, True)]
    assert p3.slices[1].dependent and p3.slices[1].address == 20 and p3.slices[1].ref_l0 == p3.slices[0].ref_l0
    assert pictures[0].slices[0].header["slice_segment_header_extension_length"] == 2
