// Slice-data layer of the parse-only HEVC parser: slice_segment_data() and everything below it (ITU-T H.265 clause
// 7.3.8 with the semantics of 7.4.9 and the ctxInc derivations of 9.3.4.2; clause numbers of the 04/2013 edition),
// the CABAC initialisation, synchronisation and storage rules of 9.3.1 / 9.3.2 for tiles, wavefronts (WPP) and
// dependent slice segments, and the intra mode derivations (8.4.2, 8.4.3) that the residual scan order depends on.
// Nothing is reconstructed: every syntax element is parsed to stay in sync with the arithmetic decoder, and what the
// motion vector derivation of a later layer needs (CU / PU geometry and the inter prediction syntax) is kept.
//
// Supported: Main, Main Still Picture and Main10 streams (4:2:0 and 4:0:0, 8..16 bit) with every version 1 tool
// (tiles, WPP, dependent slice segments, PCM, transquant bypass, transform skip, sign data hiding, AMP, scaling
// lists), plus the parsing-neutral range-extension tools (larger transform skip blocks, chroma QP offset lists,
// intra smoothing / high precision offsets / SAO offset scaling, which change no syntax here). Range-extension tools
// that change the slice-data syntax or its contexts (transform_skip_context, implicit / explicit RDPCM,
// extended_precision_processing, persistent_rice_adaptation, cabac_bypass_alignment, cross-component prediction)
// raise ParseError(Unsupported) before any CTU is parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cabac.hpp"
#include "params.hpp"
#include "slice_header.hpp"

namespace arseg::hevc {

// CuPredMode (7.4.9.5) as stored per 4x4 block; kNotCoded where no CU of the picture has been parsed.
enum class PredMode : uint8_t { kNotCoded = 0, kIntra = 1, kInter = 2, kSkip = 3 };

// PartMode (7.4.9.5, Table 7-10).
enum PartMode : uint8_t {
  kPart2Nx2N = 0,
  kPart2NxN = 1,
  kPartNx2N = 2,
  kPartNxN = 3,
  kPart2NxnU = 4,
  kPart2NxnD = 5,
  kPartnLx2N = 6,
  kPartnRx2N = 7,
};

// inter_pred_idc (7.4.9.6, Table 7-11).
enum InterPredIdc : uint8_t { kPredL0 = 0, kPredL1 = 1, kPredBi = 2 };

// One inter prediction unit (7.3.8.6) in decode order: geometry in luma samples and its syntax. For a skipped CU
// merge_flag is 1 (inferred). Fields of lists the PU does not use are 0 (ref_idx -1).
struct PredictionUnit {
  int32_t x = 0, y = 0, w = 0, h = 0;  // top-left luma sample and size
  uint8_t part_idx = 0;                // partIdx within the CU (0..3)
  bool merge_flag = false;
  uint8_t merge_idx = 0;
  uint8_t inter_pred_idc = kPredL0;  // meaningful when !merge_flag
  int8_t ref_idx[2] = {-1, -1};      // ref_idx_l0 / ref_idx_l1 (-1: list unused or merge)
  uint8_t log2_cb_size = 3;          // log2CbSize of the CU
  uint8_t part_mode = kPart2Nx2N;    // PartMode of the CU
  int32_t mvd[2][2] = {{0, 0}, {0, 0}};  // MvdL0 / MvdL1 [x, y] (MvdL1 is 0 when mvd_l1_zero_flag applies)
  uint8_t mvp_flag[2] = {0, 0};          // mvp_l0_flag / mvp_l1_flag
};

// Per slice segment: where it starts and how many CTUs it held.
struct SliceSegmentInfo {
  uint32_t slice_segment_address = 0;  // first CTB, raster scan
  uint32_t slice_addr_rs = 0;          // SliceAddrRs: address of the independent slice segment it belongs to
  bool dependent_slice_segment_flag = false;
  int slice_type = kSliceI;
  int ctus = 0;                // CTUs parsed
  int substreams = 0;          // substreams parsed (num_entry_point_offsets + 1 when in sync)
  size_t first_pu = 0;         // index of its first PU in PictureCodingState::pus
};

// Counters over the picture (what the driver summarises).
struct CodingCounts {
  int64_t ctus = 0;
  int64_t intra_cus = 0, inter_cus = 0, skip_cus = 0;
  int64_t pcm_cus = 0, transquant_bypass_cus = 0;
  int64_t pus = 0, merge_pus = 0, bi_pus = 0;
  int64_t transform_skip_blocks = 0;  // residual blocks with transform_skip_flag = 1
  int64_t cu_qp_deltas = 0;           // cu_qp_delta_abs syntax elements parsed with a non-zero value
  int64_t sao_ctus = 0;               // CTUs with sao() syntax
  int64_t coded_residual_blocks = 0;  // residual_coding() invocations
};

// Everything later CTUs, later slice segments of the same picture and later layers need, for one picture.
// Allocated from the SPS geometry; all per-block data lives on the 4x4 luma grid of the CTB-aligned picture area
// (index (y >> 2) * grid_width + (x >> 2)), all accesses bounds-checked.
class PictureCodingState {
 public:
  // picture_index: decode-order index of the picture (for error locations). Raises InvalidValue for a geometry
  // without CTBs.
  PictureCodingState(const Sps& sps, int64_t picture_index);

  // Makes this the empty state of a new picture, as the constructor does, keeping the allocated memory: a parser
  // that recycles one state for picture after picture allocates nothing per picture.
  void reset(const Sps& sps, int64_t picture_index);

  int64_t picture_index = -1;
  int pic_width = 0, pic_height = 0;    // pic_width/height_in_luma_samples
  int ctb_log2_size = 4;                // CtbLog2SizeY
  int pic_width_in_ctbs = 0, pic_height_in_ctbs = 0;
  int grid_width = 0, grid_height = 0;  // 4x4 blocks of the CTB-aligned area

  // Per 4x4 block.
  std::vector<uint8_t> ct_depth;        // CtDepth (coding quadtree depth of the CU)
  std::vector<uint8_t> cu_skip_flag;    // cu_skip_flag
  std::vector<PredMode> pred_mode;      // CuPredMode
  std::vector<uint8_t> part_mode;       // PartMode
  std::vector<uint8_t> log2_cb_size;    // log2CbSize of the CU
  std::vector<uint8_t> intra_luma_mode;  // IntraPredModeY (1 = INTRA_DC for inter / skip / PCM CUs)
  std::vector<int32_t> pu_index;        // index into pus of the covering inter PU, -1 otherwise

  // Per CTB (raster scan): SliceAddrRs of the slice that holds it, -1 while not parsed.
  std::vector<int32_t> ctb_slice_addr;

  std::vector<PredictionUnit> pus;  // decode order
  std::vector<SliceSegmentInfo> slices;
  CodingCounts counts;

  // CABAC storage (9.3.2.3): the WPP tables (after the 2nd CTB of a row) and the tables at the end of the last
  // slice segment (for a following dependent slice segment, 9.3.1), with validity flags.
  ContextSet wpp_contexts{};
  bool wpp_contexts_valid = false;
  ContextSet dependent_contexts{};
  bool dependent_contexts_valid = false;
  int32_t last_slice_addr_rs = -1;  // SliceAddrRs of the last slice segment parsed (dependent slice segments)

  // Grid index of the 4x4 block holding luma sample (x, y) of the CTB-aligned area; InvalidValue outside.
  size_t grid_index(int x, int y) const {
    if (x < 0 || y < 0 || (x >> 2) >= grid_width || (y >> 2) >= grid_height) outside_grid(x, y);
    return static_cast<size_t>(y >> 2) * static_cast<size_t>(grid_width) + static_cast<size_t>(x >> 2);
  }
  bool in_picture(int x, int y) const { return x >= 0 && y >= 0 && x < pic_width && y < pic_height; }

 private:
  [[noreturn]] static void outside_grid(int x, int y);
};

// 7.3.8.1 slice_segment_data() of one slice segment, with the CABAC rules of 9.3.1 / 9.3.2.
//   rbsp, rbsp_size: the RBSP of the slice segment NAL unit (emulation prevention removed, header included).
//   data_offset: the RBSP byte where slice_segment_data() starts (after the header's byte_alignment()).
//   entry_points: the RBSP byte offsets where substreams 1..num_entry_point_offsets start (entry_point_offset_minus1
//   mapped through the emulation-prevention map); empty without tiles / WPP.
//   picture: the state of the picture the slice segment belongs to; slice segments of a picture must be given in
//   decode order with the same state object.
// Raises ParseError: Desync when the arithmetic decoder does not end exactly at an entry point or at the end of the
// slice data (trailing cabac_zero_words allowed), when end_of_subset_one_bit is 0, when CTUs run past the end of
// the picture or a CTU is coded twice; Truncated when the decoder reads past the end of the RBSP; InvalidValue for
// out-of-range syntax; Unsupported for the range-extension tools listed above. The location names picture, slice
// segment, CTU (raster address) and the RBSP bit position.
void parse_slice_segment_data(const Sps& sps, const Pps& pps, const CtbLayout& layout, const SliceHeader& header,
                              const uint8_t* rbsp, size_t rbsp_size, size_t data_offset,
                              const std::vector<size_t>& entry_points, PictureCodingState& picture);

}  // namespace arseg::hevc
