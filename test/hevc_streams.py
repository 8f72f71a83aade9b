"""HEVC test streams and an FFmpeg ``trace_headers`` header oracle, for checking a native parser field by field.

``MATRIX`` lists small libx265 streams (:class:`StreamSpec`), one feature (or a cheap combination) each, with the
header facts each must show; :func:`encode` writes one to a raw Annex B ``.h265`` file (deterministic, cached).
:func:`trace_headers` runs FFmpeg's ``trace_headers`` bitstream filter through PyAV and parses its log into one
:class:`TracedNal` per NAL unit. :func:`shared_stream` finds the shared reference streams in
``<repo>/../shared/data/hevc/``.

Facts about the trace (FFmpeg 8 libavcodec 62.28 as bundled with PyAV 18.1; x265 4.2; checked on every ``MATRIX``
stream and on ``paris-ra-wpp.bin``):

* Traced (decomposed) NAL unit types, with their titles: VPS 32 ``Video Parameter Set``, SPS 33
  ``Sequence Parameter Set``, PPS 34 ``Picture Parameter Set``, AUD 35 ``Access Unit Delimiter``, FD 38
  ``Filler Data``, SEI 39/40 ``Prefix``/``Suffix Supplemental Enhancement Information`` and every slice type
  (0-9, 16-21) ``Slice Segment Header``. Slices are traced up to and including ``byte_alignment()``
  (``alignment_bit_equal_to_one``, ``alignment_bit_equal_to_zero``); slice data is not. Parameter sets end with
  ``rbsp_stop_one_bit`` and one ``rbsp_alignment_zero_bit`` line per bit.
* Not decomposed: EOS 36, EOB 37, reserved (checked: 22, 41) and unspecified (checked: 48) types. FFmpeg only
  logs ``Decomposition unimplemented for unit i (type t)``; :func:`trace_headers` keeps their place in the list
  with a record whose ``title`` is ``""`` and whose ``fields`` are empty, so records match
  :func:`annexb_nal_units` one to one.
* Every traced record starts with the NAL unit header: ``forbidden_zero_bit`` at 0, ``nal_unit_type`` at 1,
  ``nuh_layer_id`` at 7, ``nuh_temporal_id_plus1`` at 13; the payload starts at bit 16.
* Positions are bit offsets from the first bit of the NAL unit header, counted after emulation-prevention bytes
  are removed (:func:`remove_emulation_prevention` of the unit, header bytes included). x265's SPS always has an
  emulation-prevention byte inside the traced fields (``vui_num_units_in_tick`` = 1 is 31 zero bits), where raw
  byte offsets would drift.
* ``bits`` is exactly what was read: for ue(v)/se(v) the whole Exp-Golomb codeword (``1`` = 0, ``010`` = 1).
  Values are decimal; se(v) values are printed signed (``pps_cb_qp_offset`` = -3, ``pps_tc_offset_div2``,
  ``slice_qp_delta``, ``delta_luma_weight_l0[0]``, ``delta_chroma_log2_weight_denom``, ``luma_offset_l1[0]``).
* Elements longer than 32 bits are read in two pieces, printed as two consecutive lines with the same name:
  ``general_reserved_zero_35bits`` as 24 + 11 bits (Main/Main10, x265) and ``general_reserved_zero_43bits`` as
  24 + 19 bits (paris, profile_idc 0). 32-bit elements (``vui_num_units_in_tick``, ``vui_time_scale``) take one
  line. Other names legitimately repeat without an index: ``reserved_zero_2bits`` (one per unused sub-layer slot),
  ``ff_byte``, ``rbsp_alignment_zero_bit``, ``alignment_bit_equal_to_zero``.
* Names are identifiers plus numeric indices in spec order: ``general_profile_compatibility_flag[3]``,
  ``sps_max_dec_pic_buffering_minus1[0]``, ``entry_point_offset_minus1[2]``, ``delta_chroma_weight_l0[0][1]``,
  ``picture_md5[0][5]``.
* SEI: one record per SEI NAL unit. Each message prints ``last_payload_type_byte`` and ``last_payload_size_byte``
  (after ``ff_byte`` lines for values of 255 and more), then a title and its fields; the titles (``User Data
  Unregistered``, ``Decoded Picture Hash``, ``Buffering Period``, ``Picture Timing``, ``Active Parameter Sets``) go
  to :attr:`TracedNal.sections`, the fields stay in the record's field list.
* Log plumbing: fields, titles and ``Packet: N bytes, ...`` lines come at INFO (32), the undecomposed-unit notice
  at VERBOSE (40), per-packet ``nal_unit_type: 32(VPS), nuh_layer_id: 0, temporal_id: 0`` lines at DEBUG (48).
  PyAV folds identical consecutive log lines into ``(repeated N more times)``; tracing turns that off. A filter
  built from a demuxed stream would first trace the stream's extradata (VPS/SPS/PPS again, under
  ``Extradata``); it is built from the codec name instead, so every record comes from the bitstream, in order.
* ``access_unit`` is the demuxed packet index (FFmpeg's HEVC parser splits access units; a stray EOS lands at the
  start of the next packet). Tracing is fast: the 1000-frame paris stream (2003 NAL units, ~50k fields) takes
  about 0.4 s; ``max_access_units`` limits a trace to a prefix anyway.
* Tracing changes PyAV's process-wide log settings for its duration (restored afterwards): not thread-safe.

x265 notes: 4:2:0 needs even sizes (libx265 rejects 333x197), so 334x198 and 202x138 exercise the conformance
window; with deblocking off, SAO on and WPP on, libx265 4.2 hangs while flushing, so ``deblock_off`` also turns
WPP off; FFmpeg's raw ``hevc`` muxer makes libx265 repeat VPS/SPS/PPS before every keyframe; ``rect`` leaves no
trace in headers. Streams with ``frames`` pictures decode to exactly ``frames`` frames.
"""

from __future__ import annotations

import io
import logging
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import av.bitstream
import av.logging
import numpy as np

from arseg_ros.data.synthetic import panning_clip

LOG = logging.getLogger(__name__)

_FIELD_LINE = re.compile(r"^(\d+)\s+(.+?)\s+([01]*)\s*=\s*(-?\d+)$")
_SPLIT_LINE = re.compile(r"^nal_unit_type: (\d+)\(\w*\), nuh_layer_id: \d+, temporal_id: (\d+)$")
_UNTRACED_LINE = re.compile(r"^Decomposition unimplemented for unit (\d+) \(type (\d+)\)\.$")
_WARNING_LEVEL = 24
_INFO_LEVEL = 32
_VERBOSE_LEVEL = 40
_DEBUG_LEVEL = 48


@dataclass(frozen=True)
class TracedField:
    """One syntax element as ``trace_headers`` prints it.

    ``position``: bit offset from the first bit of the NAL unit header, counted in the NAL unit *after*
    emulation-prevention bytes are removed. ``name``: as printed, array indices included
    (``general_profile_compatibility_flag[3]``). ``bits``: the bits read, as a ``0``/``1`` string
    (``len(bits)`` is the element's coded length). ``value``: the decoded value (negative for se(v)).
    """

    position: int
    name: str
    bits: str
    value: int


@dataclass
class TracedNal:
    """One NAL unit traced by ``trace_headers``.

    ``title``: the structure's title (``"Sequence Parameter Set"``, ``"Slice Segment Header"``, ...), ``""`` for
    a unit FFmpeg does not decompose (EOS, EOB, reserved types), whose ``fields`` are then empty.
    ``nal_unit_type``/``temporal_id``: from the traced NAL unit header (for an undecomposed unit, from FFmpeg's
    NAL unit list). ``access_unit``: index of the
    demuxed packet (access unit) the NAL unit came in, from 0. ``sections``: titles of nested structures
    (SEI messages: ``"User Data Unregistered"``, ``"Decoded Picture Hash"``, ...). ``fields``: in bit order.
    """

    title: str
    nal_unit_type: int
    temporal_id: int
    access_unit: int
    fields: list[TracedField] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)


def fields_by_name(nal: TracedNal) -> dict[str, list[int]]:
    """``{name: [value, ...]}`` for one traced NAL unit, values in bit order (split fields appear twice)."""
    out: dict[str, list[int]] = {}
    for f in nal.fields:
        out.setdefault(f.name, []).append(f.value)
    return out


def field_values(nals: Sequence[TracedNal], name: str) -> list[int]:
    """Every value the field ``name`` takes over ``nals``, in stream order."""
    return [f.value for nal in nals for f in nal.fields if f.name == name]


def _capture_trace(data: bytes, max_access_units: int | None) -> list[tuple[int, str]]:
    """Feed ``data`` packet by packet through ``trace_headers``; its log records as ``(level, text)``."""
    level, skip_repeated = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.TRACE)
    av.logging.set_skip_repeated(False)
    try:
        with av.logging.Capture(local=False) as logs, av.open(io.BytesIO(data), format="hevc") as container:
            stream = container.streams.video[0]
            bsf = av.bitstream.BitStreamFilterContext("trace_headers", "hevc")
            count = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if max_access_units is not None and count >= max_access_units:
                    break
                bsf.filter(packet)
                count += 1
            bsf.filter(None)
    finally:
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip_repeated)
    return [(log_level, text.strip()) for log_level, name, text in logs if name == "trace_headers"]


class _TraceParser:
    """Turns the ``trace_headers`` log of one stream into :class:`TracedNal` records."""

    def __init__(self) -> None:
        self.nals: list[TracedNal] = []
        self.titles: list[str] = []
        self.access_unit = -1
        self.split: list[tuple[int, int]] = []

    def feed(self, level: int, line: str) -> None:
        """Consume one log line."""
        if level == _DEBUG_LEVEL:
            unit = _SPLIT_LINE.match(line)
            if unit is not None:
                self.split.append((int(unit[1]), int(unit[2])))
            return
        if level == _VERBOSE_LEVEL:
            untraced = _UNTRACED_LINE.match(line)
            if untraced is not None:
                self._untraced(int(untraced[1]), int(untraced[2]))
            return
        if level != _INFO_LEVEL:
            if level <= _WARNING_LEVEL:
                LOG.warning("trace_headers: %s", line)
            return
        if line.startswith("Packet:"):
            self._flush_titles()
            self.access_unit += 1
            self.split = []
            return
        match = _FIELD_LINE.match(line)
        if match is None:
            self.titles.append(line)
            return
        traced = TracedField(int(match[1]), match[2], match[3], int(match[4]))
        if traced.position == 0 and traced.name == "forbidden_zero_bit":
            if not self.titles:
                raise ValueError(f"trace_headers printed a NAL unit without a title in access unit {self.access_unit}")
            title = self.titles.pop()
            self._flush_titles()
            self.nals.append(TracedNal(title, -1, -1, self.access_unit))
        elif not self.nals:
            raise ValueError(f"trace_headers printed {line!r} before any NAL unit")
        else:
            self._flush_titles()
        self.nals[-1].fields.append(traced)

    def finish(self) -> list[TracedNal]:
        """Return the records, with ``nal_unit_type`` and ``temporal_id`` filled in from the traced header."""
        self._flush_titles()
        for nal in self.nals:
            if nal.fields:
                values = fields_by_name(nal)
                nal.nal_unit_type = values["nal_unit_type"][0]
                nal.temporal_id = values["nuh_temporal_id_plus1"][0] - 1
        return self.nals

    def _flush_titles(self) -> None:
        if self.titles and not self.nals:
            raise ValueError(f"trace_headers printed titles {self.titles} before any NAL unit")
        if self.titles:
            self.nals[-1].sections.extend(self.titles)
        self.titles = []

    def _untraced(self, index: int, nal_unit_type: int) -> None:
        if index >= len(self.split) or self.split[index][0] != nal_unit_type:
            raise ValueError(f"untraced unit {index} (type {nal_unit_type}) is not in the packet's unit list")
        self._flush_titles()
        self.nals.append(TracedNal("", nal_unit_type, self.split[index][1], self.access_unit))


def trace_headers(data: bytes, max_access_units: int | None = None) -> list[TracedNal]:
    """Trace the headers of the raw Annex B HEVC ``data`` with FFmpeg; one record per NAL unit, in stream order.

    NAL units FFmpeg does not decompose (EOS, EOB, reserved and unspecified types) get a record with an empty
    ``title`` and no ``fields``. ``max_access_units`` stops after that many access units (demuxed packets).
    Raises ``av.error.FFmpegError`` when FFmpeg cannot parse a header and ``ValueError`` when the trace has an
    unexpected shape.
    """
    parser = _TraceParser()
    for level, line in _capture_trace(data, max_access_units):
        parser.feed(level, line)
    return parser.finish()


def annexb_nal_units(data: bytes) -> list[bytes]:
    """Split Annex B ``data`` into NAL units: start codes removed, emulation-prevention bytes kept.

    Trailing zero bytes before a start code (``trailing_zero_8bits``, the leading zero of 4-byte start
    codes) are stripped from the preceding NAL unit, as Annex B B.2 specifies.
    """
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def remove_emulation_prevention(nal: bytes) -> bytes:
    """Return the RBSP-domain bytes of a NAL unit: every ``0x03`` following two zero bytes removed."""
    return re.sub(b"\x00\x00\x03", b"\x00\x00", nal)


NAL_VPS, NAL_SPS, NAL_PPS, NAL_AUD, NAL_EOS, NAL_EOB, NAL_FD, NAL_SEI_PREFIX, NAL_SEI_SUFFIX = range(32, 41)
SLICE_NAL_TYPES = frozenset(range(10)) | frozenset(range(16, 22))
IRAP_NAL_TYPES = frozenset(range(16, 24))
SLICE_TYPE_B, SLICE_TYPE_P, SLICE_TYPE_I = 0, 1, 2


def slice_segments(nals: Sequence[TracedNal]) -> list[TracedNal]:
    """Return the traced slice segment headers among ``nals``."""
    return [nal for nal in nals if nal.nal_unit_type in SLICE_NAL_TYPES and nal.fields]


def pictures(nals: Sequence[TracedNal]) -> list[list[TracedNal]]:
    """Slice segment headers grouped into pictures by ``first_slice_segment_in_pic_flag``."""
    out: list[list[TracedNal]] = []
    for nal in slice_segments(nals):
        if fields_by_name(nal)["first_slice_segment_in_pic_flag"][0] == 1 or not out:
            out.append([])
        out[-1].append(nal)
    return out


@dataclass(frozen=True)
class Check:
    """A named predicate over the traced NAL units of one stream."""

    description: str
    predicate: Callable[[Sequence[TracedNal]], bool]

    def __call__(self, nals: Sequence[TracedNal]) -> bool:
        return self.predicate(nals)


def has(**values: int) -> Check:
    """Return a check that some NAL unit has all of these ``field=value`` pairs.

    For example, a B slice in a reference picture.
    """

    def predicate(nals: Sequence[TracedNal]) -> bool:
        for nal in nals:
            found = fields_by_name(nal)
            if all(value in found.get(name, ()) for name, value in values.items()):
                return True
        return False

    return Check(f"some NAL unit has {values}", predicate)


def has_field(name: str) -> Check:
    """Return a check that the field ``name`` is traced at least once."""
    return Check(f"{name} is present", lambda nals: bool(field_values(nals, name)))


def never(name: str, value: int) -> Check:
    """Return a check that the field ``name`` is traced at least once and never takes ``value``."""

    def predicate(nals: Sequence[TracedNal]) -> bool:
        values = field_values(nals, name)
        return bool(values) and value not in values

    return Check(f"{name} is present and never {value}", predicate)


def only(name: str, *allowed: int) -> Check:
    """Return a check that the field ``name`` is traced at least once and only takes values from ``allowed``."""

    def predicate(nals: Sequence[TracedNal]) -> bool:
        values = field_values(nals, name)
        return bool(values) and set(values) <= set(allowed)

    return Check(f"{name} is present and only in {allowed}", predicate)


def largest(name: str, value: int) -> Check:
    """Return a check that the largest value the field ``name`` takes is ``value``."""
    return Check(f"max({name}) == {value}", lambda nals: max(field_values(nals, name), default=None) == value)


def lacks(**values: int) -> Check:
    """No NAL unit has all of these ``field=value`` pairs."""
    positive = has(**values)
    return Check(f"no NAL unit has {values}", lambda nals: not positive(nals))


def absent(name: str) -> Check:
    """Return a check that the field ``name`` is never traced."""
    return Check(f"{name} is absent", lambda nals: not field_values(nals, name))


def has_section(title: str) -> Check:
    """Return a check that some NAL unit contains a nested structure titled ``title``.

    The structure is an SEI message, for instance.
    """
    return Check(f"some NAL unit contains {title!r}", lambda nals: any(title in nal.sections for nal in nals))


def max_l0_references(n: int) -> Check:
    """Return a check that the most active list-0 references any P or B slice uses is ``n``.

    A slice's active references are its slice override or the PPS default.
    """

    def predicate(nals: Sequence[TracedNal]) -> bool:
        defaults: dict[int, int] = {}
        most = 0
        for nal in nals:
            values = fields_by_name(nal)
            if nal.nal_unit_type == NAL_PPS:
                defaults[values["pps_pic_parameter_set_id"][0]] = values["num_ref_idx_l0_default_active_minus1"][0]
            elif nal.nal_unit_type in SLICE_NAL_TYPES and values.get("slice_type", [SLICE_TYPE_I])[0] != SLICE_TYPE_I:
                override = values.get("num_ref_idx_l0_active_minus1")
                active = override[0] if override else defaults[values["slice_pic_parameter_set_id"][0]]
                most = max(most, active + 1)
        return most == n

    return Check(f"the most list-0 references a P or B slice uses is {n}", predicate)


def count(nal_types: Sequence[int], low: int, high: int | None = None) -> Check:
    """Between ``low`` and ``high`` (inclusive, no upper bound when ``None``) NAL units have a type in ``nal_types``."""

    def predicate(nals: Sequence[TracedNal]) -> bool:
        n = sum(nal.nal_unit_type in nal_types for nal in nals)
        return n >= low and (high is None or n <= high)

    bound = f"{low}..{high}" if high is not None else f"at least {low}"
    return Check(f"{bound} NAL units of types {tuple(nal_types)}", predicate)


def segments_per_picture(n: int) -> Check:
    """Every picture consists of exactly ``n`` slice segments."""

    def predicate(nals: Sequence[TracedNal]) -> bool:
        pics = pictures(nals)
        return bool(pics) and all(len(pic) == n for pic in pics)

    return Check(f"{n} slice segments per picture", predicate)


def irap_pictures(n: int) -> Check:
    """Exactly ``n`` pictures are IRAP pictures."""

    def predicate(nals: Sequence[TracedNal]) -> bool:
        return sum(pic[0].nal_unit_type in IRAP_NAL_TYPES for pic in pictures(nals)) == n

    return Check(f"{n} IRAP pictures", predicate)


@dataclass(frozen=True)
class StreamSpec:
    """One generated test stream: content, size and libx265 settings, plus the header facts it must show.

    ``x265_params`` holds the features under test; :attr:`encoder_params` adds ``log-level=error``.
    The content is :func:`arseg_ros.data.synthetic.panning_clip` panning at ``velocity`` px/frame, darkened
    linearly to ``1 - fade`` of its brightness over the clip (a fade makes x265 signal real weights).
    ``expect``: ``{field: value}``, each meaning "some traced NAL unit has this field with this value";
    ``checks``: further predicates. Both must hold on :func:`trace_headers` of the encoded stream.
    """

    name: str
    width: int = 160
    height: int = 120
    frames: int = 12
    pix_fmt: str = "yuv420p"
    preset: str = "medium"
    x265_params: str = ""
    fps: int = 30
    velocity: tuple[float, float] = (2.0, 1.0)
    seed: int = 0
    fade: float = 0.0
    expect: Mapping[str, int] = field(default_factory=dict, hash=False)
    checks: tuple[Check, ...] = ()

    @property
    def encoder_params(self) -> str:
        """Return the full ``x265-params`` option string."""
        return ":".join(p for p in ("log-level=error", self.x265_params) if p)

    def all_checks(self) -> list[Check]:
        """:attr:`expect` as checks, followed by :attr:`checks`."""
        return [has(**{name: value}) for name, value in self.expect.items()] + list(self.checks)

    def failed_checks(self, nals: Sequence[TracedNal]) -> list[str]:
        """Descriptions of the checks that ``nals`` fails (empty when the stream shows all its features)."""
        return [check.description for check in self.all_checks() if not check(nals)]


def render(spec: StreamSpec) -> np.ndarray:
    """Return the ``(frames, height, width, 3)`` uint8 RGB content of ``spec``."""
    frames = panning_clip(spec.width, spec.height, spec.frames, velocity=spec.velocity, seed=spec.seed).frames
    if not spec.fade:
        return frames
    gain = np.linspace(1.0, 1.0 - spec.fade, spec.frames, dtype=np.float32).reshape(-1, 1, 1, 1)
    return np.clip(frames * gain + 0.5, 0, 255).astype(np.uint8)


def encode(spec: StreamSpec, directory: Path) -> Path:
    """Encode ``spec`` with libx265 into ``directory/<name>.h265`` (raw Annex B); an existing file is reused."""
    path = directory / f"{spec.name}.h265"
    if path.exists():
        return path
    partial = path.with_name(path.name + ".part")
    with av.open(str(partial), "w", format="hevc") as container:
        stream = container.add_stream("libx265", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, spec.pix_fmt
        stream.options = {"preset": spec.preset, "x265-params": spec.encoder_params}
        for index, rgb in enumerate(render(spec)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    partial.replace(path)
    LOG.debug("encoded %s: %d bytes", path, path.stat().st_size)
    return path


def decode(path: Path) -> list[tuple[int, int, str]]:
    """``(width, height, pixel format)`` of every frame PyAV decodes from ``path``."""
    with av.open(str(path), format="hevc") as container:
        return [(frame.width, frame.height, frame.format.name) for frame in container.decode(video=0)]


def repository_root() -> Path:
    """Return the repository root: the folder above ``test/``."""
    return Path(__file__).resolve().parent.parent


def shared_stream(name: str) -> Path | None:
    """``<repo>/../shared/data/hevc/<name>`` when that file exists, else ``None``."""
    path = repository_root().parent / "shared" / "data" / "hevc" / name
    return path if path.is_file() else None


def _spec(name: str, x265_params: str = "", **options: Any) -> StreamSpec:
    """Return a :class:`StreamSpec` whose pan velocity and scene seed derive from ``name``.

    The derived values are stable, and varied per stream.
    """
    digest = zlib.crc32(name.encode())
    options.setdefault("velocity", ((digest % 29 - 14) / 4 or 1.25, ((digest >> 8) % 13 - 6) / 4))
    options.setdefault("seed", digest % 1000)
    return StreamSpec(name=name, x265_params=x265_params, **options)


_FIXED_GOP = "keyint=8:min-keyint=8:scenecut=0:bframes=3:b-adapt=0"

MATRIX: list[StreamSpec] = [
    _spec(
        "preset_ultrafast",
        preset="ultrafast",
        expect={"sample_adaptive_offset_enabled_flag": 0, "sign_data_hiding_enabled_flag": 0, "weighted_pred_flag": 0},
        checks=(only("five_minus_max_num_merge_cand", 3), only("log2_diff_max_min_luma_coding_block_size", 1)),
    ),
    _spec(
        "preset_superfast",
        preset="superfast",
        expect={"sample_adaptive_offset_enabled_flag": 0, "sign_data_hiding_enabled_flag": 1},
        checks=(only("log2_diff_max_min_luma_coding_block_size", 2), only("weighted_pred_flag", 0)),
    ),
    _spec(
        "preset_veryfast",
        preset="veryfast",
        expect={"sample_adaptive_offset_enabled_flag": 1, "weighted_pred_flag": 1},
        checks=(only("five_minus_max_num_merge_cand", 3), only("log2_diff_max_min_luma_coding_block_size", 3)),
    ),
    _spec(
        "preset_faster",
        preset="faster",
        expect={"weighted_pred_flag": 1},
        checks=(only("five_minus_max_num_merge_cand", 3), max_l0_references(2)),
    ),
    _spec("preset_fast", preset="fast", checks=(only("five_minus_max_num_merge_cand", 3), max_l0_references(3))),
    _spec("preset_medium", preset="medium", checks=(only("five_minus_max_num_merge_cand", 2), max_l0_references(3))),
    _spec("preset_slow", preset="slow", checks=(only("five_minus_max_num_merge_cand", 2), max_l0_references(4))),
    _spec(
        "preset_slower",
        preset="slower",
        expect={"amp_enabled_flag": 1, "weighted_bipred_flag": 1},
        checks=(only("five_minus_max_num_merge_cand", 1),),
    ),
    _spec("bframes0", "bframes=0", checks=(never("slice_type", SLICE_TYPE_B),)),
    _spec(
        "bframes3",
        "bframes=3:b-adapt=0:b-pyramid=0",
        expect={"slice_type": SLICE_TYPE_B},
        checks=(lacks(nal_unit_type=1, slice_type=SLICE_TYPE_B),),
    ),
    _spec(
        "bframes8_pyramid",
        "bframes=8:b-adapt=0:b-pyramid=1",
        frames=18,
        expect={"sps_max_latency_increase_plus1[0]": 9},
        checks=(has(nal_unit_type=1, slice_type=SLICE_TYPE_B), has(nal_unit_type=0, slice_type=SLICE_TYPE_B)),
    ),
    *(
        _spec(f"ref{n}", f"bframes=0:ref={n}", frames=10, checks=(max_l0_references(n), never("slice_type", 0)))
        for n in range(1, 6)
    ),
    _spec(
        "weightp",
        "bframes=0:weightp=1",
        fade=0.5,
        expect={"weighted_pred_flag": 1, "luma_weight_l0_flag[0]": 1},
        checks=(has_field("luma_log2_weight_denom"), has_field("luma_offset_l0[0]")),
    ),
    _spec(
        "weightb",
        "bframes=3:b-adapt=0:weightb=1",
        fade=0.5,
        expect={"weighted_bipred_flag": 1, "luma_weight_l1_flag[0]": 1},
        checks=(has(slice_type=SLICE_TYPE_B, **{"luma_weight_l1_flag[0]": 1}),),
    ),
    _spec("amp_rect_on", "amp=1:rect=1", preset="slow", expect={"amp_enabled_flag": 1}),
    _spec("amp_rect_off", "amp=0:rect=0", preset="slow", checks=(only("amp_enabled_flag", 0),)),
    _spec(
        "tmvp_off",
        "temporal-mvp=0",
        expect={"sps_temporal_mvp_enabled_flag": 0},
        checks=(absent("slice_temporal_mvp_enabled_flag"),),
    ),
    _spec(
        "wpp_on",
        "wpp=1:ctu=32",
        expect={"entropy_coding_sync_enabled_flag": 1},
        checks=(largest("num_entry_point_offsets", 3),),
    ),
    _spec(
        "wpp_off",
        "wpp=0",
        expect={"entropy_coding_sync_enabled_flag": 0},
        checks=(absent("num_entry_point_offsets"),),
    ),
    *(
        _spec(f"slices{n}", f"slices={n}:ctu=32", checks=(segments_per_picture(n), has_field("slice_segment_address")))
        for n in (2, 3, 4)
    ),
    _spec("signhide_off", "signhide=0", expect={"sign_data_hiding_enabled_flag": 0}),
    _spec("tskip", "tskip=1", expect={"transform_skip_enabled_flag": 1}),
    _spec("lossless", "lossless=1", frames=8, expect={"transquant_bypass_enabled_flag": 1}),
    _spec("cu_lossless", "cu-lossless=1", expect={"transquant_bypass_enabled_flag": 1}),
    *(
        _spec(f"max_merge{n}", f"max-merge={n}", frames=8, checks=(only("five_minus_max_num_merge_cand", 5 - n),))
        for n in range(1, 6)
    ),
    _spec(
        "open_gop",
        f"{_FIXED_GOP}:open-gop=1",
        frames=17,
        checks=(count([21], 1), count([8, 9], 1), irap_pictures(3)),
    ),
    _spec(
        "closed_gop",
        f"{_FIXED_GOP}:open-gop=0",
        frames=17,
        checks=(count([21], 0, 0), count([19, 20], 3, 3)),
    ),
    _spec("keyint1", "keyint=1", frames=6, checks=(only("slice_type", SLICE_TYPE_I), irap_pictures(6))),
    _spec("keyint12", "keyint=12:min-keyint=12:scenecut=0", frames=16, checks=(irap_pictures(2),)),
    _spec("keyint250", "keyint=250", frames=16, checks=(irap_pictures(1),)),
    _spec(
        "scaling_list",
        "scaling-list=default",
        expect={"scaling_list_enabled_flag": 1, "sps_scaling_list_data_present_flag": 0},
    ),
    _spec(
        "main10",
        pix_fmt="yuv420p10le",
        expect={"bit_depth_luma_minus8": 2, "bit_depth_chroma_minus8": 2, "general_profile_idc": 2},
    ),
    _spec(
        "size_334x198",
        width=334,
        height=198,
        expect={"pic_width_in_luma_samples": 336, "conf_win_right_offset": 1, "conf_win_bottom_offset": 1},
    ),
    _spec(
        "size_202x138",
        width=202,
        height=138,
        frames=8,
        expect={"pic_width_in_luma_samples": 208, "conf_win_right_offset": 3, "conf_win_bottom_offset": 3},
    ),
    _spec(
        "size_1920x1080",
        width=1920,
        height=1080,
        frames=3,
        preset="ultrafast",
        velocity=(1.5, 0.5),
        expect={"pic_width_in_luma_samples": 1920, "pic_height_in_luma_samples": 1088, "conf_win_bottom_offset": 4},
    ),
    _spec("sao_off", "sao=0", expect={"sample_adaptive_offset_enabled_flag": 0}),
    _spec("deblock_off", "deblock=false:wpp=0", expect={"pps_deblocking_filter_disabled_flag": 1}),
    _spec(
        "deblock_chroma_offsets",
        "deblock=-2,2:cbqpoffs=-3:crqpoffs=2",
        expect={"pps_tc_offset_div2": -2, "pps_beta_offset_div2": 2, "pps_cb_qp_offset": -3, "pps_cr_qp_offset": 2},
    ),
    _spec(
        "temporal_layers",
        "temporal-layers=3:bframes=3:b-adapt=0",
        frames=16,
        expect={"sps_max_sub_layers_minus1": 2, "nuh_temporal_id_plus1": 3},
        checks=(count([2, 3], 1),),
    ),
    _spec("radl", f"{_FIXED_GOP}:open-gop=0:radl=2", frames=17, checks=(count([19], 1), count([6, 7], 1))),
    _spec(
        "hrd_aud_repeat_headers",
        "hrd=1:aud=1:repeat-headers=1:vbv-bufsize=500:vbv-maxrate=400:keyint=8",
        expect={"vui_hrd_parameters_present_flag": 1, "nal_hrd_parameters_present_flag": 1},
        checks=(
            count([NAL_AUD], 12, 12),
            count([NAL_SPS], 2),
            has_section("Buffering Period"),
            has_section("Picture Timing"),
        ),
    ),
    _spec("constrained_intra", "constrained-intra=1", expect={"constrained_intra_pred_flag": 1}),
    _spec(
        "hash_md5",
        "hash=1",
        checks=(count([NAL_SEI_SUFFIX], 12, 12), has_section("Decoded Picture Hash")),
    ),
    _spec(
        "vui_colour",
        "colorprim=bt709:transfer=bt709:colormatrix=bt709:range=full:sar=1:overscan=show:chromaloc=1",
        expect={
            "colour_primaries": 1,
            "video_full_range_flag": 1,
            "aspect_ratio_idc": 1,
            "overscan_info_present_flag": 1,
            "chroma_sample_loc_type_top_field": 1,
        },
    ),
    _spec(
        "ctu16",
        "ctu=16:min-cu-size=8",
        expect={"log2_diff_max_min_luma_coding_block_size": 1, "log2_min_luma_coding_block_size_minus3": 0},
        checks=(largest("num_entry_point_offsets", 7),),
    ),
    _spec(
        "tu_depth",
        "tu-intra-depth=3:tu-inter-depth=3:max-tu-size=16",
        expect={"max_transform_hierarchy_depth_intra": 2, "max_transform_hierarchy_depth_inter": 2},
    ),
    _spec(
        "main10_slices_cu_lossless_tskip",
        "slices=2:ctu=32:cu-lossless=1:tskip=1",
        pix_fmt="yuv420p10le",
        expect={"bit_depth_luma_minus8": 2, "transquant_bypass_enabled_flag": 1, "transform_skip_enabled_flag": 1},
        checks=(segments_per_picture(2),),
    ),
]
