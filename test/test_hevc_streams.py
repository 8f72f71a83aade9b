"""The HEVC test-stream matrix and the ``trace_headers`` oracle of ``hevc_streams``."""

from __future__ import annotations

import re
from pathlib import Path

import av
import av.logging
import pytest
from hevc_streams import (
    MATRIX,
    NAL_EOB,
    NAL_EOS,
    NAL_FD,
    NAL_SEI_SUFFIX,
    SLICE_TYPE_B,
    StreamSpec,
    TracedNal,
    annexb_nal_units,
    decode,
    encode,
    field_values,
    fields_by_name,
    has,
    lacks,
    never,
    pictures,
    remove_emulation_prevention,
    segments_per_picture,
    shared_stream,
    slice_segments,
    trace_headers,
)

SPECS = {spec.name: spec for spec in MATRIX}
BASELINE = "preset_medium"
# Specs whose header facts the medium baseline shares: their settings are medium's defaults (rect leaves no
# trace in headers).
BASELINE_LIKE = {"preset_medium", "keyint250", "max_merge3", "amp_rect_off"}
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*$")


def nal_type(unit: bytes) -> int:
    """``nal_unit_type`` from the first byte of a NAL unit."""
    return (unit[0] >> 1) & 0x3F


def bits_at(data: bytes, position: int, length: int) -> str:
    """``length`` bits of ``data`` from bit ``position``, as a ``0``/``1`` string."""
    first = position // 8
    window = "".join(f"{byte:08b}" for byte in data[first : (position + length + 7) // 8 + 1])
    return window[position - 8 * first : position - 8 * first + length]


def annexb(units: list[bytes], start_code: bytes = b"\x00\x00\x00\x01") -> bytes:
    """NAL units joined into an Annex B byte stream."""
    return b"".join(start_code + unit for unit in units)


def assert_positions_match(data: bytes, nals: list[TracedNal]) -> None:
    """Each traced record is the NAL unit at the same index, and its fields' bits sit at their positions."""
    units = annexb_nal_units(data)
    assert [nal.nal_unit_type for nal in nals] == [nal_type(unit) for unit in units]
    for nal, unit in zip(nals, units, strict=True):
        rbsp = remove_emulation_prevention(unit)
        for f in nal.fields:
            assert bits_at(rbsp, f.position, len(f.bits)) == f.bits, (nal.title, f)


def test_matrix_is_large_with_unique_names():
    assert len(MATRIX) >= 30
    assert len(SPECS) == len(MATRIX)
    assert all(re.fullmatch(r"[a-z0-9_]+", spec.name) for spec in MATRIX)


@pytest.mark.parametrize(
    "required",
    [
        *(f"preset_{p}" for p in ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")),
        *(f"ref{n}" for n in range(1, 6)),
        *(f"max_merge{n}" for n in range(1, 6)),
        *(f"slices{n}" for n in (2, 3, 4)),
        *("bframes0", "bframes3", "bframes8_pyramid", "weightp", "weightb", "amp_rect_on", "amp_rect_off"),
        *("tmvp_off", "wpp_on", "wpp_off", "signhide_off", "tskip", "lossless", "cu_lossless", "open_gop"),
        *("closed_gop", "keyint1", "keyint12", "keyint250", "scaling_list", "main10", "size_1920x1080", "sao_off"),
        *("deblock_off", "temporal_layers", "radl", "hrd_aud_repeat_headers", "constrained_intra"),
    ],
)
def test_matrix_has_required_stream(required: str):
    assert required in SPECS


def test_matrix_has_odd_sizes_and_small_streams():
    assert any(spec.width % 8 and spec.height % 8 for spec in MATRIX)
    for spec in MATRIX:
        assert spec.frames <= 18
        assert spec.width * spec.height <= 400 * 300 or spec.frames <= 4


def test_every_spec_checks_something():
    assert all(spec.all_checks() for spec in MATRIX)


@pytest.mark.parametrize("spec", MATRIX, ids=lambda spec: spec.name)
def test_stream_decodes_to_its_frames(spec: StreamSpec, hevc_matrix: dict[str, Path]):
    frames = decode(hevc_matrix[spec.name])
    assert len(frames) == spec.frames
    assert {(width, height) for width, height, _ in frames} == {(spec.width, spec.height)}
    ten_bit = spec.pix_fmt.endswith("10le")
    assert all(fmt.endswith("10le") == ten_bit for _, _, fmt in frames)


@pytest.mark.parametrize("spec", MATRIX, ids=lambda spec: spec.name)
def test_stream_shows_its_features(spec: StreamSpec, hevc_matrix_traces: dict[str, list[TracedNal]]):
    nals = hevc_matrix_traces[spec.name]
    assert spec.failed_checks(nals) == []
    assert len(pictures(nals)) == spec.frames


@pytest.mark.parametrize("spec", [s for s in MATRIX if s.name not in BASELINE_LIKE], ids=lambda spec: spec.name)
def test_stream_checks_reject_the_baseline(spec: StreamSpec, hevc_matrix_traces: dict[str, list[TracedNal]]):
    assert spec.failed_checks(hevc_matrix_traces[BASELINE]) != []


@pytest.mark.parametrize("spec", MATRIX, ids=lambda spec: spec.name)
def test_trace_positions_are_rbsp_bit_offsets(
    spec: StreamSpec, hevc_matrix: dict[str, Path], hevc_matrix_traces: dict[str, list[TracedNal]]
):
    assert_positions_match(hevc_matrix[spec.name].read_bytes(), hevc_matrix_traces[spec.name])


def test_emulation_prevention_is_removed_before_counting(
    hevc_matrix: dict[str, Path], hevc_matrix_traces: dict[str, list[TracedNal]]
):
    """Some traced field lies past an emulation-prevention byte; its bits only match in the RBSP domain."""
    found = 0
    for name, path in hevc_matrix.items():
        for nal, unit in zip(hevc_matrix_traces[name], annexb_nal_units(path.read_bytes()), strict=True):
            if any(bits_at(unit, f.position, len(f.bits)) != f.bits for f in nal.fields):
                assert remove_emulation_prevention(unit) != unit
                found += 1
    assert found > 0


def test_trace_records_have_header_fields(hevc_matrix_traces: dict[str, list[TracedNal]]):
    for nals in hevc_matrix_traces.values():
        for nal in nals:
            assert nal.title
            assert [f.name for f in nal.fields[:4]] == [
                "forbidden_zero_bit",
                "nal_unit_type",
                "nuh_layer_id",
                "nuh_temporal_id_plus1",
            ]
            assert [f.position for f in nal.fields[:4]] == [0, 1, 7, 13]
            assert nal.temporal_id == fields_by_name(nal)["nuh_temporal_id_plus1"][0] - 1
            positions = [f.position for f in nal.fields]
            assert positions == sorted(positions)
            assert all(FIELD_NAME.match(f.name) for f in nal.fields)


def test_fixed_length_values_match_their_bits(hevc_matrix_traces: dict[str, list[TracedNal]]):
    flags = [f for nals in hevc_matrix_traces.values() for nal in nals for f in nal.fields if f.name.endswith("_flag")]
    assert flags
    assert all(f.value == int(f.bits, 2) for f in flags)


def test_long_reserved_field_is_split_in_two(hevc_matrix_traces: dict[str, list[TracedNal]]):
    sps = next(nal for nal in hevc_matrix_traces[BASELINE] if nal.title == "Sequence Parameter Set")
    parts = [f for f in sps.fields if f.name == "general_reserved_zero_35bits"]
    assert [len(f.bits) for f in parts] == [24, 11]
    assert parts[1].position == parts[0].position + 24


def test_signed_values_are_negative(hevc_matrix_traces: dict[str, list[TracedNal]]):
    nals = hevc_matrix_traces["deblock_chroma_offsets"]
    assert field_values(nals, "pps_cb_qp_offset") == [-3]
    assert field_values(nals, "pps_tc_offset_div2") == [-2]
    assert min(field_values(hevc_matrix_traces["weightp"], "delta_luma_weight_l0[0]")) < 0


def test_signed_values_decode_from_their_exp_golomb_bits(hevc_matrix_traces: dict[str, list[TracedNal]]):
    negative = [f for nals in hevc_matrix_traces.values() for nal in nals for f in nal.fields if f.value < 0]
    assert negative
    for f in negative:
        code = int(f.bits, 2) - 1
        assert len(f.bits) % 2 == 1
        assert f.value == (-1) ** (code + 1) * ((code + 1) // 2), f


def test_sei_messages_are_sections(hevc_matrix_traces: dict[str, list[TracedNal]]):
    hashes = [nal for nal in hevc_matrix_traces["hash_md5"] if nal.nal_unit_type == NAL_SEI_SUFFIX]
    assert len(hashes) == SPECS["hash_md5"].frames
    assert all(nal.sections == ["Decoded Picture Hash"] for nal in hashes)
    assert all(len(fields_by_name(nal)["picture_md5[0][0]"]) == 1 for nal in hashes)


def test_access_units_follow_pictures(hevc_matrix_traces: dict[str, list[TracedNal]]):
    for name, nals in hevc_matrix_traces.items():
        first_units = [pic[0].access_unit for pic in pictures(nals)]
        assert first_units == list(range(SPECS[name].frames)), name


def test_untraced_nal_units_keep_their_place(hevc_matrix: dict[str, Path]):
    units = annexb_nal_units(hevc_matrix[BASELINE].read_bytes())
    extra = [
        bytes([NAL_EOS << 1, 1]),
        bytes([41 << 1, 3, 0x12, 0x80]),
        bytes([NAL_FD << 1, 1, 0xFF, 0xFF, 0x80]),
        bytes([48 << 1, 1, 0x34, 0x80]),
    ]
    data = annexb([*units[:6], *extra, *units[6:], bytes([NAL_EOB << 1, 1])])
    nals = trace_headers(data)
    assert_positions_match(data, nals)
    untraced = [(nal.nal_unit_type, nal.temporal_id) for nal in nals if not nal.fields]
    assert untraced == [(NAL_EOS, 0), (41, 2), (48, 0), (NAL_EOB, 0)]
    assert all(nal.title == "" for nal in nals if not nal.fields)
    filler = next(nal for nal in nals if nal.nal_unit_type == NAL_FD)
    assert filler.title == "Filler Data"
    assert fields_by_name(filler)["ff_byte"] == [255, 255]


def test_trace_error_raises_and_restores_logging(hevc_matrix: dict[str, Path]):
    units = annexb_nal_units(hevc_matrix[BASELINE].read_bytes())
    without_pps = annexb([unit for unit in units if nal_type(unit) != 34])
    settings = (av.logging.get_level(), av.logging.get_skip_repeated())
    with pytest.raises(av.error.InvalidDataError):
        trace_headers(without_pps)
    assert (av.logging.get_level(), av.logging.get_skip_repeated()) == settings


def test_max_access_units_traces_a_prefix(hevc_matrix: dict[str, Path], hevc_matrix_traces: dict[str, list[TracedNal]]):
    full = hevc_matrix_traces["bframes3"]
    head = trace_headers(hevc_matrix["bframes3"].read_bytes(), max_access_units=3)
    assert head == [nal for nal in full if nal.access_unit < 3]
    assert {nal.access_unit for nal in head} == {0, 1, 2}


def test_annexb_split_handles_both_start_code_lengths(hevc_matrix: dict[str, Path]):
    units = annexb_nal_units(hevc_matrix[BASELINE].read_bytes())
    assert [nal_type(unit) for unit in units[:4]] == [32, 33, 34, 39]
    assert annexb_nal_units(annexb(units, b"\x00\x00\x01")) == units
    assert annexb_nal_units(b"\x00" + annexb(units) + b"\x00\x00") == units


def test_remove_emulation_prevention():
    assert remove_emulation_prevention(b"\x40\x01\x00\x00\x03\x01\x00\x00\x03\x00\x00\x03") == (
        b"\x40\x01\x00\x00\x01\x00\x00\x00\x00"
    )
    assert remove_emulation_prevention(b"\x00\x03\x00\x00\x03\x03") == b"\x00\x03\x00\x00\x03"


def test_encode_is_deterministic_and_cached(tmp_path: Path, hevc_matrix: dict[str, Path]):
    for name in ("weightb", "slices3", "main10"):
        assert encode(SPECS[name], tmp_path).read_bytes() == hevc_matrix[name].read_bytes()
    cached = tmp_path / "bframes0.h265"
    cached.write_bytes(b"cached")
    assert encode(SPECS["bframes0"], tmp_path) == cached
    assert cached.read_bytes() == b"cached"


def test_checks_can_fail(hevc_matrix_traces: dict[str, list[TracedNal]]):
    p_only = hevc_matrix_traces["bframes0"]
    assert not has(slice_type=SLICE_TYPE_B)(p_only)
    assert lacks(slice_type=SLICE_TYPE_B)(p_only)
    assert not never("slice_type", 1)(p_only)
    assert not never("no_such_field", 1)(p_only)
    assert not segments_per_picture(2)(p_only)
    assert segments_per_picture(1)(p_only)


def test_shared_stream_missing_returns_none():
    assert shared_stream("no-such-stream.bin") is None


def test_paris_stream_headers(paris_traces: list[TracedNal]):
    slices = slice_segments(paris_traces)
    assert len(pictures(paris_traces)) == 1000
    assert 1 in field_values(paris_traces, "entropy_coding_sync_enabled_flag")
    sps = [nal for nal in paris_traces if nal.title == "Sequence Parameter Set"]
    assert 1 in field_values(sps, "inter_ref_pic_set_prediction_flag")
    assert 1 in field_values(slices, "cabac_init_flag")
    assert 1 in field_values(slices, "mvd_l1_zero_flag")
    assert 1 in field_values(slices, "inter_ref_pic_set_prediction_flag")
    assert has(nal_unit_type=21)(paris_traces)


def test_paris_stream_positions(paris_stream: Path, paris_traces: list[TracedNal]):
    assert_positions_match(paris_stream.read_bytes(), paris_traces)


def test_paris_stream_prefix(paris_stream: Path, paris_traces: list[TracedNal]):
    head = trace_headers(paris_stream.read_bytes(), max_access_units=10)
    assert head == [nal for nal in paris_traces if nal.access_unit < 10]
    assert len(pictures(head)) == 10
