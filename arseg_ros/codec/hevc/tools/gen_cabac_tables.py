#!/usr/bin/env python3
"""Generate the HEVC CABAC constant tables (``cabac_tables.hpp``/``.cpp``) from ``cabac_tables.json``.

The JSON (H.265 clause 9.3 constants as data, kept outside the repository under ``shared/data/hevc``) is the single
source of the numbers; the generated C++ files are committed so that the parser builds without it. Run once after the
JSON changes::

    python arseg_ros/codec/hevc/tools/gen_cabac_tables.py             # rewrite the two files
    python arseg_ros/codec/hevc/tools/gen_cabac_tables.py --check     # exit 1 if the committed files are stale

Layout of the context set: one block per context-coded syntax element, indexed by the spec's ctxInc, so a parser
always uses ``ctx::ELEMENT + ctxInc``. Version 1 (Main/Main10) elements come first in Table 9-4 order, the RExt-only
elements after them. The two RExt slots inside v1 elements sit at their spec ctxInc (``cbf_cb`` 4, ``sig_coeff_flag``
42/43), so a Main/Main10 parser indexes its contexts directly and never needs to skip anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

HEVC_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = HEVC_DIR.parent.parent.parent
DEFAULT_JSON = REPO_ROOT.parent / "shared" / "data" / "hevc" / "cabac_tables.json"
HEADER_NAME = "cabac_tables.hpp"
SOURCE_NAME = "cabac_tables.cpp"

# initValue of slots that an initType does not have (e.g. part_mode slots 1-3 for initType 0, every P/B-only element
# for initType 0). 154 gives valMps 1, pStateIdx 0 at every QP; the parser never reads these slots.
FILLER_INIT_VALUE = 154
NUM_INIT_TYPES = 3
MAIN_CONTEXTS_PER_INIT_TYPE = (134, 154, 154)  # README: all RExt contexts left out


@dataclass(frozen=True)
class Element:
    """One context-coded syntax element: its JSON key, C++ enum name and how many of its contexts Main uses."""

    key: str
    enum: str
    main_count: int | None  # None: every context is a v1 context; 0: RExt-only element
    aliases: tuple[tuple[str, int], ...] = ()  # extra enum names at a fixed ctxInc inside the block


# Table 9-4 order for v1 (04/2013) elements, then the RExt elements in 10/2014 table order (9-32 .. 9-37).
ELEMENTS: tuple[Element, ...] = (
    Element("sao_merge_left_flag", "SAO_MERGE_FLAG", None),
    Element("sao_type_idx_luma", "SAO_TYPE_IDX", None),
    Element("split_cu_flag", "SPLIT_CU_FLAG", None),
    Element("cu_transquant_bypass_flag", "CU_TRANSQUANT_BYPASS_FLAG", None),
    Element("cu_skip_flag", "CU_SKIP_FLAG", None),
    Element("pred_mode_flag", "PRED_MODE_FLAG", None),
    Element("part_mode", "PART_MODE", None),
    Element("prev_intra_luma_pred_flag", "PREV_INTRA_LUMA_PRED_FLAG", None),
    Element("intra_chroma_pred_mode", "INTRA_CHROMA_PRED_MODE", None),
    Element("rqt_root_cbf", "RQT_ROOT_CBF", None),
    Element("merge_flag", "MERGE_FLAG", None),
    Element("merge_idx", "MERGE_IDX", None),
    Element("inter_pred_idc", "INTER_PRED_IDC", None),
    Element("ref_idx_l0", "REF_IDX", None),
    Element("mvp_l0_flag", "MVP_FLAG", None),
    Element("split_transform_flag", "SPLIT_TRANSFORM_FLAG", None),
    Element("cbf_luma", "CBF_LUMA", None),
    Element("cbf_cb", "CBF_CHROMA", 4),
    Element("abs_mvd_greater0_flag", "ABS_MVD_GREATER0", None),
    Element("abs_mvd_greater1_flag", "ABS_MVD_GREATER1", None),
    Element("cu_qp_delta_abs", "CU_QP_DELTA_ABS", None),
    Element(
        "transform_skip_flag",
        "TRANSFORM_SKIP_FLAG",
        None,
        (("TRANSFORM_SKIP_FLAG_LUMA", 0), ("TRANSFORM_SKIP_FLAG_CHROMA", 1)),
    ),
    Element("last_sig_coeff_x_prefix", "LAST_SIG_COEFF_X_PREFIX", None),
    Element("last_sig_coeff_y_prefix", "LAST_SIG_COEFF_Y_PREFIX", None),
    Element("coded_sub_block_flag", "CODED_SUB_BLOCK_FLAG", None),
    Element("sig_coeff_flag", "SIG_COEFF_FLAG", 42),
    Element("coeff_abs_level_greater1_flag", "COEFF_ABS_LEVEL_GREATER1_FLAG", None),
    Element("coeff_abs_level_greater2_flag", "COEFF_ABS_LEVEL_GREATER2_FLAG", None),
    Element(
        "explicit_rdpcm_flag",
        "EXPLICIT_RDPCM_FLAG",
        0,
        (("EXPLICIT_RDPCM_FLAG_LUMA", 0), ("EXPLICIT_RDPCM_FLAG_CHROMA", 1)),
    ),
    Element(
        "explicit_rdpcm_dir_flag",
        "EXPLICIT_RDPCM_DIR_FLAG",
        0,
        (("EXPLICIT_RDPCM_DIR_FLAG_LUMA", 0), ("EXPLICIT_RDPCM_DIR_FLAG_CHROMA", 1)),
    ),
    Element("cu_chroma_qp_offset_flag", "CU_CHROMA_QP_OFFSET_FLAG", 0),
    Element("cu_chroma_qp_offset_idx", "CU_CHROMA_QP_OFFSET_IDX", 0),
    Element("log2_res_scale_abs_plus1", "LOG2_RES_SCALE_ABS_PLUS1", 0),
    Element("res_scale_sign_flag", "RES_SCALE_SIGN_FLAG", 0),
)


@dataclass(frozen=True)
class Block:
    """Where one element's contexts sit in the flat context set, with its init values per initType."""

    element: Element
    spec_table: str
    first: int
    size: int
    counts: tuple[int, int, int]
    main_count: int
    init_values: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def _check_byte_list(name: str, values: list[int], length: int, upper: int) -> None:
    """Raise ValueError unless ``values`` has ``length`` integers in ``[0, upper]``."""
    if len(values) != length or not all(isinstance(v, int) and 0 <= v <= upper for v in values):
        raise ValueError(f"{name}: expected {length} integers in [0, {upper}]")


def build_blocks(tables: dict) -> list[Block]:
    """Lay out the context blocks from the JSON ``contexts`` map, checking it against ``ELEMENTS``."""
    contexts = tables["contexts"]
    known = {e.key for e in ELEMENTS}
    if set(contexts) != known:
        missing, extra = sorted(known - set(contexts)), sorted(set(contexts) - known)
        raise ValueError(f"context elements differ from the generator's list: missing {missing}, unknown {extra}")
    blocks = []
    first = 0
    for element in ELEMENTS:
        entry = contexts[element.key]
        lists = [entry["init_values"][str(t)] for t in range(NUM_INIT_TYPES)]
        size = max(len(v) for v in lists)
        for t, values in enumerate(lists):
            _check_byte_list(f"{element.key} initType {t}", values, len(values), 255)
        main_count = size if element.main_count is None else element.main_count
        if not 0 <= main_count <= size:
            raise ValueError(f"{element.key}: main_count {main_count} outside [0, {size}]")
        for alias, inc in element.aliases:
            if not 0 <= inc < size:
                raise ValueError(f"{alias}: ctxInc {inc} outside the {size}-context block")
        blocks.append(
            Block(
                element=element,
                spec_table=str(entry["spec_table"]),
                first=first,
                size=size,
                counts=(len(lists[0]), len(lists[1]), len(lists[2])),
                main_count=main_count,
                init_values=(tuple(lists[0]), tuple(lists[1]), tuple(lists[2])),
            )
        )
        first += size
    for t in range(NUM_INIT_TYPES):
        main = sum(min(b.main_count, b.counts[t]) for b in blocks)
        if main != MAIN_CONTEXTS_PER_INIT_TYPE[t]:
            raise ValueError(f"initType {t}: {main} Main/Main10 contexts, expected {MAIN_CONTEXTS_PER_INIT_TYPE[t]}")
    return blocks


def _rows(values: list[int] | tuple[int, ...], per_line: int, indent: str) -> str:
    """Format integers as comma-separated lines of ``per_line`` values."""
    lines = []
    for i in range(0, len(values), per_line):
        lines.append(indent + ", ".join(f"{v:3d}" for v in values[i : i + per_line]) + ",")
    return "\n".join(lines)


def render_header(blocks: list[Block], tables: dict) -> str:
    """Return the text of ``cabac_tables.hpp``."""
    total = blocks[-1].first + blocks[-1].size
    entries: list[tuple[str, str]] = []
    for b in blocks:
        if b.main_count == 0:
            tag = "; RExt only"
        elif b.main_count < b.size:
            tag = f"; RExt from ctxInc {b.main_count}"
        else:
            tag = ""
        counts = "/".join(str(c) for c in b.counts)
        entries.append(
            (f"  {b.element.enum} = {b.first},", f"Table {b.spec_table}, {counts} contexts for initType 0/1/2{tag}")
        )
        entries.extend((f"  {alias} = {b.first + inc},", "") for alias, inc in b.element.aliases)
    entries.append((f"  NUM_CONTEXTS = {total},", ""))
    width = max(len(code) for code, _ in entries)
    enum_lines = [f"{code.ljust(width)}  // {note}" if note else code for code, note in entries]
    num_elements = len(blocks)
    map_len = len(tables["ctx_idx_map_sig_coeff_4x4"])
    return f"""// Generated by arseg_ros/codec/hevc/tools/gen_cabac_tables.py from shared/data/hevc/cabac_tables.json.
// Do not edit: change the JSON or the generator and run the generator again.
//
// Normative CABAC constants of ITU-T H.265 clause 9.3: context init values (04/2013 Tables 9-5 .. 9-31, RExt
// 10/2014 Tables 9-32 .. 9-37), rangeTabLps and the state transition table, and ctxIdxMap of 4x4 sig_coeff_flag.
#pragma once

#include <cstdint>

namespace arseg::hevc {{

// First context of each context-coded syntax element in a ContextSet (9.3.2.2, Table 9-4). The context of a bin is
// ctx::ELEMENT + ctxInc, with ctxInc as the spec derives it (9.3.4.2); every block is indexed by that ctxInc.
// Shared contexts: sao_merge_left/up_flag, sao_type_idx_luma/chroma, ref_idx_l0/l1, mvp_l0/l1_flag, cbf_cb/cbf_cr,
// and the x and y components of abs_mvd_greater0/1_flag. Version 1 (Main/Main10) elements come first; RExt slots of
// v1 elements sit at their spec ctxInc (CBF_CHROMA + 4, SIG_COEFF_FLAG + 42/43) and RExt-only elements come last.
namespace ctx {{
enum CtxOffset : uint16_t {{
{chr(10).join(enum_lines)}
}};
}}  // namespace ctx

namespace cabac_tables {{

inline constexpr int kNumInitTypes = {NUM_INIT_TYPES};
inline constexpr int kNumElements = {num_elements};
inline constexpr uint8_t kFillerInitValue = {FILLER_INIT_VALUE};

// One element's block in the context set.
struct ElementInfo {{
  const char* name;              // spec name (the first one when several syntax elements share the contexts)
  const char* spec_table;        // init value table: 04/2013 numbering, 10/2014 for RExt-only elements
  uint16_t first;                // ctx::ELEMENT
  uint8_t size;                  // contexts in the block
  uint8_t count[kNumInitTypes];  // contexts that exist for initType 0/1/2 (the rest hold kFillerInitValue)
  uint8_t main_count;            // contexts a Main/Main10 parser uses (ctxInc 0 .. main_count-1)
}};

extern const ElementInfo kElements[kNumElements];

// initValue of every context per initType (9.3.2.2); slots an initType lacks hold kFillerInitValue.
extern const uint8_t kInitValues[kNumInitTypes][ctx::NUM_CONTEXTS];

// rangeTabLps[pStateIdx][qRangeIdx] ("Specification of rangeTabLps depending on the values of pStateIdx and
// qRangeIdx", Table 9-46 in later editions).
extern const uint8_t kRangeTabLps[64][4];

// State transition table ("State transition table", Table 9-47 in later editions).
extern const uint8_t kTransIdxLps[64];
extern const uint8_t kTransIdxMps[64];

// ctxIdxMap[i] of 4x4 sig_coeff_flag, i = (yC << 2) + xC (04/2013 Table 9-39, 9.3.4.2.5).
inline constexpr int kCtxIdxMapSigCoeff4x4Size = {map_len};
extern const uint8_t kCtxIdxMapSigCoeff4x4[kCtxIdxMapSigCoeff4x4Size];

}}  // namespace cabac_tables
}}  // namespace arseg::hevc
"""


def render_source(blocks: list[Block], tables: dict) -> str:
    """Return the text of ``cabac_tables.cpp``."""
    total = blocks[-1].first + blocks[-1].size
    element_lines = []
    for b in blocks:
        counts = ", ".join(str(c) for c in b.counts)
        fields = f'"{b.element.key}", "{b.spec_table}", ctx::{b.element.enum}, {b.size}, {{{counts}}}, {b.main_count}'
        element_lines.append(f"    {{{fields}}},")
    init_sections = []
    for t in range(NUM_INIT_TYPES):
        lines = [f"    // initType {t}"]
        for b in blocks:
            values = list(b.init_values[t]) + [FILLER_INIT_VALUE] * (b.size - b.counts[t])
            if b.counts[t] == 0:
                filler = " (absent in this initType: filler)"
            elif b.counts[t] < b.size:
                filler = f" (ctxInc {b.counts[t]}.. absent in this initType: filler)"
            else:
                filler = ""
            lines.append(f"    // {b.element.enum}{filler}")
            lines.append(_rows(values, 16, "    "))
        init_sections.append("  {\n" + "\n".join(lines) + "\n  },")
    lps_rows = "\n".join("    {" + ", ".join(f"{v:3d}" for v in row) + "}," for row in tables["range_tab_lps"])
    return f"""// Generated by arseg_ros/codec/hevc/tools/gen_cabac_tables.py from shared/data/hevc/cabac_tables.json.
// Do not edit: change the JSON or the generator and run the generator again.
#include "cabac_tables.hpp"

namespace arseg::hevc::cabac_tables {{

static_assert(ctx::NUM_CONTEXTS == {total}, "context count");

const ElementInfo kElements[kNumElements] = {{
{chr(10).join(element_lines)}
}};

const uint8_t kInitValues[kNumInitTypes][ctx::NUM_CONTEXTS] = {{
{chr(10).join(init_sections)}
}};

const uint8_t kRangeTabLps[64][4] = {{
{lps_rows}
}};

const uint8_t kTransIdxLps[64] = {{
{_rows(tables["trans_idx_lps"], 16, "    ")}
}};

const uint8_t kTransIdxMps[64] = {{
{_rows(tables["trans_idx_mps"], 16, "    ")}
}};

const uint8_t kCtxIdxMapSigCoeff4x4[kCtxIdxMapSigCoeff4x4Size] = {{
{_rows(tables["ctx_idx_map_sig_coeff_4x4"], 16, "    ")}
}};

}}  // namespace arseg::hevc::cabac_tables
"""


def generate(json_path: Path) -> dict[str, str]:
    """Read and validate the JSON; return ``{file name: text}`` for the two generated files."""
    tables = json.loads(json_path.read_text(encoding="utf-8"))
    if len(tables["range_tab_lps"]) != 64:
        raise ValueError("range_tab_lps: expected 64 rows")
    for p, row in enumerate(tables["range_tab_lps"]):
        _check_byte_list(f"range_tab_lps[{p}]", row, 4, 255)
    _check_byte_list("trans_idx_lps", tables["trans_idx_lps"], 64, 63)
    _check_byte_list("trans_idx_mps", tables["trans_idx_mps"], 64, 63)
    _check_byte_list("ctx_idx_map_sig_coeff_4x4", tables["ctx_idx_map_sig_coeff_4x4"], 15, 8)
    blocks = build_blocks(tables)
    return {HEADER_NAME: render_header(blocks, tables), SOURCE_NAME: render_source(blocks, tables)}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write the files, or with ``--check`` report whether they are up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="path of cabac_tables.json")
    parser.add_argument("--out-dir", type=Path, default=HEVC_DIR, help="directory of the generated C++ files")
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    outputs = generate(args.json)
    stale = []
    for name, text in outputs.items():
        path = args.out_dir / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
