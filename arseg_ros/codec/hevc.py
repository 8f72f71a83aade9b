"""Parse-only HEVC (H.265) header layers, from the C++ module ``arseg_ros.codec._hevc``.

The layers: NAL units, parameter sets, slice segment headers, picture order count, reference picture sets and
reference picture lists.

Units: sizes are in luma samples, positions (``bit_position``, trace ``position``) in bits of the NAL unit's
RBSP (emulation-prevention bytes removed) counted from the first bit of the NAL unit header, byte offsets
(``slice_data_byte_offset``, ``substream_offsets``) in bytes of that RBSP, ``entry_point_offset_minus1`` in
bytes of the escaped NAL unit as coded. POCs are ``PicOrderCntVal``. Pictures come in decode order.

Error handling: a corrupt or unsupported NAL unit raises :class:`HevcParseError` (a ``ValueError``) with
``kind``, ``nal_index``, ``picture`` (decode index), ``slice`` (segment index in the picture), ``ctu`` and
``bit_position`` (-1 where not applicable). The call still processes the rest of its input first, and the
parser stays usable: it drops the picture in progress and skips coded slices until the next IRAP picture,
which starts a new coded video sequence (its RASL pictures are returned with ``decodable=False``). The
pictures completed during the failing call are attached to the exception as ``pictures``. Pictures before the
first IRAP of a stream are skipped the same way (not an error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._hevc import HevcParseError, split_annexb
from ._hevc import Parser as _NativeParser
from .motion import MotionField

PRED_MODES = {0: "not coded", 1: "intra", 2: "inter", 3: "skip"}
PRED_SKIP = 3
PART_MODES = {0: "2Nx2N", 1: "2NxN", 2: "Nx2N", 3: "NxN", 4: "2NxnU", 5: "2NxnD", 6: "nLx2N", 7: "nRx2N"}

__all__ = [
    "PART_MODES",
    "PRED_MODES",
    "SLICE_TYPES",
    "HevcParseError",
    "HevcParser",
    "NalDump",
    "Picture",
    "RefPicture",
    "SliceSegment",
    "TraceField",
    "dump_headers",
    "motion_field",
    "split_annexb",
]

#: slice_type values (7.4.7.1 Table 7-7) to letters.
SLICE_TYPES = {0: "B", 1: "P", 2: "I"}


@dataclass(frozen=True)
class RefPicture:
    """One entry of RefPicList0/1 (8.3.4).

    It holds the picture's POC, whether it is a long-term reference, whether it is a placeholder for a missing
    picture (8.3.3), and the stable id of its DPB picture.
    """

    poc: int
    long_term: bool
    missing: bool
    dpb_id: int


@dataclass(frozen=True)
class TraceField:
    """One traced syntax element.

    It holds the bit ``position`` in the RBSP (from the NAL unit header's first bit), the FFmpeg
    ``trace_headers`` name (array indices included) and the decoded value.
    """

    position: int
    name: str
    value: int


@dataclass
class SliceSegment:
    """One slice segment.

    ``slice_type``: 0 B, 1 P, 2 I. ``address``: slice_segment_address in CTBs (raster scan). ``qp``: SliceQpY.
    ``ref_l0``/``ref_l1``: the reference lists (empty for I slices and for pictures that are not decodable).
    ``substream_offsets``: RBSP byte offsets of the substreams (index 0 is the start of slice_segment_data()),
    mapped from ``entry_point_offset_minus1`` through the emulation-prevention bytes.
    ``header``: decoded slice header fields. ``fields``: the header trace (``HevcParser(trace=True)`` only).
    """

    nal_index: int
    slice_type: int
    address: int
    dependent: bool
    qp: int
    ref_l0: list[RefPicture]
    ref_l1: list[RefPicture]
    entry_point_offset_minus1: list[int]
    substream_offsets: list[int]
    slice_data_byte_offset: int
    header: dict[str, object]
    fields: list[TraceField] = field(default_factory=list)

    @property
    def ref_pocs_l0(self) -> list[int]:
        return [r.poc for r in self.ref_l0]

    @property
    def ref_pocs_l1(self) -> list[int]:
        return [r.poc for r in self.ref_l1]


@dataclass
class Picture:
    """One coded picture, in decode order.

    ``poc``: PicOrderCntVal. ``width``/``height``: coded size in luma samples; ``cropped_width``/
    ``cropped_height``: after the conformance window, whose offsets ``crop`` = (left, right, top, bottom) are
    in luma samples. ``decodable``: False for the RASL pictures of a CRA/BLA that starts the stream or follows an
    error (their references are missing). ``dpb_id``: stable id of this picture in the DPB (-1 if not
    decodable), the ``dpb_id`` later pictures' reference entries point to. ``rps``: the POC lists of 8.3.2
    (st_curr_before, st_curr_after, st_foll, lt_curr, lt_foll) and the number of generated placeholders.
    ``motion`` (parsers made with ``motion=True``, decodable pictures): the derived motion on the 4x4 luma block
    grid ``(Hb, Wb)``: ``pred_flag`` ``(2, Hb, Wb)`` uint8 (list 0 / list 1 used), ``mv`` ``(2, Hb, Wb, 2)`` int16
    quarter-pel ``(x, y)``, ``ref_idx`` ``(2, Hb, Wb)`` int8, ``ref_poc`` ``(2, Hb, Wb)`` int32 and
    ``ref_long_term`` ``(2, Hb, Wb)`` uint8; blocks without prediction from a list (intra) have ``pred_flag`` 0.
    ``coding`` (same pictures): the coding structure on that grid, ``(Hb, Wb)`` uint8 each: ``log2_cb_size`` (log2
    of the CU size in luma samples), ``pred_mode`` (:data:`PRED_MODES`: 1 intra, 2 inter, 3 skip),
    ``part_mode`` (:data:`PART_MODES`) and ``merge_flag`` (1 where the inter PU takes its motion from a merge
    candidate, skipped CUs included).
    """

    decode_index: int
    poc: int
    nal_unit_type: int
    is_irap: bool
    temporal_id: int
    no_rasl_output_flag: bool
    decodable: bool
    pic_output_flag: bool
    width: int
    height: int
    cropped_width: int
    cropped_height: int
    crop: tuple[int, int, int, int]
    sps_id: int
    pps_id: int
    dpb_id: int
    rps: dict[str, object]
    slices: list[SliceSegment]
    motion: dict[str, np.ndarray] | None = None
    coding: dict[str, np.ndarray] | None = None

    @property
    def slice_types(self) -> list[int]:
        """slice_type of every slice segment (0 B, 1 P, 2 I)."""
        return [s.slice_type for s in self.slices]

    @property
    def ref_pocs_l0(self) -> list[list[int]]:
        """RefPicList0 POCs per slice segment."""
        return [s.ref_pocs_l0 for s in self.slices]

    @property
    def ref_pocs_l1(self) -> list[list[int]]:
        """RefPicList1 POCs per slice segment."""
        return [s.ref_pocs_l1 for s in self.slices]


@dataclass
class NalDump:
    """The traced header of one VPS/SPS/PPS/slice segment NAL unit.

    ``title`` as FFmpeg's CBS prints it ("Video Parameter Set", "Sequence Parameter Set", "Picture Parameter Set",
    "Slice Segment Header").
    """

    nal_index: int
    nal_unit_type: int
    temporal_id: int
    title: str
    fields: list[TraceField]


def _fields(raw: list[tuple[int, str, int]]) -> list[TraceField]:
    return [TraceField(p, n, v) for p, n, v in raw]


def _refs(raw: list[tuple[int, bool, bool, int]]) -> list[RefPicture]:
    return [RefPicture(*r) for r in raw]


def _picture(d: dict) -> Picture:
    slices = [
        SliceSegment(
            nal_index=s["nal_index"],
            slice_type=s["slice_type"],
            address=s["address"],
            dependent=s["dependent"],
            qp=s["qp"],
            ref_l0=_refs(s["ref_l0"]),
            ref_l1=_refs(s["ref_l1"]),
            entry_point_offset_minus1=s["entry_point_offset_minus1"],
            substream_offsets=s["substream_offsets"],
            slice_data_byte_offset=s["slice_data_byte_offset"],
            header=s["header"],
            fields=_fields(s["fields"]),
        )
        for s in d["slices"]
    ]
    keys = Picture.__dataclass_fields__.keys() - {"slices"}
    return Picture(slices=slices, **{k: d[k] for k in keys})


class HevcParser:
    """Incremental HEVC header parser.

    ``feed`` takes Annex B bytes in chunks of any size (a NAL unit is parsed when the next start code arrives);
    ``feed_access_unit`` takes one whole access unit (length-prefixed NAL units, or Annex B); ``flush`` ends the
    stream. Each returns the pictures completed by it, in decode order. ``trace=True`` records every header
    field (``SliceSegment.fields`` and :meth:`take_dumps`). ``motion=True`` also parses the slice data (CABAC,
    every syntax element, with the synchronisation check at each entry point and slice end) and derives the
    motion vectors of every block (``Picture.motion``). The GIL is released while parsing.
    """

    def __init__(self, trace: bool = False, motion: bool = False) -> None:
        self._native = _NativeParser(trace, motion)

    def _call(self, fn, *args) -> list[Picture]:
        try:
            return [_picture(d) for d in fn(*args)]
        except HevcParseError as e:
            e.pictures = [_picture(d) for d in self._native.take_pictures()]
            raise

    def feed(self, data: bytes) -> list[Picture]:
        """Append Annex B bytes; returns the pictures completed so far."""
        return self._call(self._native.feed, data)

    def feed_access_unit(self, data: bytes, length_size: int | None = None) -> list[Picture]:
        """Parse one complete access unit.

        ``length_size``: 1, 2 or 4 for length-prefixed NAL units (hvcC ``lengthSizeMinusOne + 1``); None: Annex B
        if ``data`` starts with a start code, else 4.
        """
        if length_size is None:
            length_size = 0 if data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01" else 4
        return self._call(self._native.feed_access_unit, data, length_size)

    def flush(self) -> list[Picture]:
        """End the stream; returns the last pictures. The next input starts a new stream."""
        return self._call(self._native.flush)

    def take_dumps(self) -> list[NalDump]:
        """Return the header traces recorded since the last call (``trace=True``)."""
        return [
            NalDump(d["nal_index"], d["nal_unit_type"], d["temporal_id"], d["title"], _fields(d["fields"]))
            for d in self._native.take_dumps()
        ]

    def stats(self) -> dict[str, int]:
        """Return the counts: nal_units, pictures, dropped_pictures, errors, generated_missing."""
        return self._native.stats()


def dump_headers(data: bytes) -> list[NalDump]:
    """Return the traced headers of every VPS, SPS, PPS and slice segment of an Annex B stream, in stream order.

    The headers carry FFmpeg ``trace_headers`` field names and RBSP bit positions. Raises :class:`HevcParseError`
    on the first error. Slice segments of pictures the parser skips (before the first IRAP) are not dumped.
    """
    parser = HevcParser(trace=True)
    parser.feed(data)
    parser.flush()
    return parser.take_dumps()


def motion_field(picture: Picture) -> MotionField | None:
    """Return the ``MotionField`` of a picture parsed with ``motion=True`` (``None`` when it has no motion)."""
    if picture.motion is None:
        return None
    m = picture.motion
    pred = m["pred_flag"].astype(bool)
    types = picture.slice_types
    kind = "I" if all(t == 2 for t in types) else "B" if any(t == 0 for t in types) else "P"
    result = MotionField(
        poc=picture.poc,
        picture_type=kind,
        is_irap=picture.is_irap,
        width=picture.width,
        height=picture.height,
        mv=np.ascontiguousarray(m["mv"], dtype=np.int16),
        pred_flag=pred,
        ref_poc=m["ref_poc"].astype(np.int64),
        intra=~(pred[0] | pred[1]),
        skip=picture.coding["pred_mode"] == PRED_SKIP,
        merge=picture.coding["merge_flag"].astype(bool),
    )
    result.validate()
    return result
