"""Compressed video: packets, decoding, HEVC bitstream parsing and motion fields."""

from __future__ import annotations

import importlib

# HEVC header parser (arseg_ros.codec.hevc, backed by the compiled arseg_ros.codec._hevc). Exported lazily so
# that the pure-Python parts of this package import without the extension.
_HEVC_NAMES = frozenset(
    {"HevcParseError", "HevcParser", "NalDump", "Picture", "RefPicture", "SliceSegment", "TraceField", "dump_headers"}
)

__all__ = sorted(_HEVC_NAMES)


def __getattr__(name: str) -> object:
    if name in _HEVC_NAMES:
        return getattr(importlib.import_module(".hevc", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
