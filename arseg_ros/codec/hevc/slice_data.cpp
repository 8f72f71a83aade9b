// Slice-data layer (7.3.8, 7.4.9, 9.3.1, 9.3.2, 9.3.4.2, 8.4.2, 8.4.3); see slice_data.hpp.
#include "slice_data.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace arseg::hevc {

namespace {

constexpr int kIntraPlanar = 0;
constexpr int kIntraDc = 1;
constexpr int kIntraAngular10 = 10;
constexpr int kIntraAngular26 = 26;
constexpr int kMaxCoeffAbsLevel = 32768;  // |TransCoeffLevel| <= 2^15 (CoeffMinY/C = -2^15, 7.4.9.11)
constexpr int kMaxMvdAbs = 32768;         // MvdLX in -2^15 .. 2^15 - 1 (7.4.9.9)
constexpr int kMaxRemainingPrefix = 32;   // longest coeff_abs_level_remaining prefix accepted (9.3.3.11)

[[noreturn]] void fail(ErrorKind kind, const std::string& message) { throw ParseError(kind, message); }

// A position in a scan (6.5.3 .. 6.5.5).
struct ScanPos {
  uint8_t x = 0;
  uint8_t y = 0;
};

// ScanOrder[log2BlockSize][scanIdx][sPos] for block sizes 1x1 .. 8x8 (6.5.3 up-right diagonal, 6.5.4 horizontal,
// 6.5.5 vertical): sub-block scans of 4x4 .. 32x32 transform blocks and the coefficient scan inside a sub-block,
// with what residual_coding() derives from them once instead of per coefficient:
//   position[log2][scanIdx][(y << log2) + x]: the inverse scan, sPos of (x, y);
//   sig_ctx_4x4[scanIdx][n]: sigCtx of 4x4 transform blocks at scan position n, ctxIdxMap[(yC << 2) + xC]
//     (9.3.4.2.5, Table 9-43; position 15 is never a coded sig_coeff_flag);
//   sig_ctx_pattern[scanIdx][prevCsbf][n]: the sigCtx of 9.3.4.2.5 from prevCsbf and the position (xP, yP) of scan
//     position n in its sub-block, before the offsets that depend on the block (added by residual_coding()).
struct ScanTables {
  std::array<std::array<std::array<ScanPos, 64>, 3>, 4> order{};
  std::array<std::array<std::array<uint8_t, 64>, 3>, 4> position{};
  std::array<std::array<uint8_t, 16>, 3> sig_ctx_4x4{};
  std::array<std::array<std::array<uint8_t, 16>, 4>, 3> sig_ctx_pattern{};

  ScanTables() {
    for (int log2 = 0; log2 < 4; ++log2) {
      const int size = 1 << log2;
      auto& diag = order[static_cast<size_t>(log2)][0];
      int i = 0;
      int x = 0;
      int y = 0;
      bool stop = false;
      while (!stop) {  // 6.5.3
        while (y >= 0) {
          if (x < size && y < size) {
            diag[static_cast<size_t>(i)] = ScanPos{static_cast<uint8_t>(x), static_cast<uint8_t>(y)};
            ++i;
          }
          --y;
          ++x;
        }
        y = x;
        x = 0;
        if (i >= size * size) stop = true;
      }
      auto& hor = order[static_cast<size_t>(log2)][1];
      auto& ver = order[static_cast<size_t>(log2)][2];
      i = 0;
      for (int yy = 0; yy < size; ++yy) {  // 6.5.4
        for (int xx = 0; xx < size; ++xx, ++i) {
          hor[static_cast<size_t>(i)] = ScanPos{static_cast<uint8_t>(xx), static_cast<uint8_t>(yy)};
        }
      }
      i = 0;
      for (int xx = 0; xx < size; ++xx) {  // 6.5.5
        for (int yy = 0; yy < size; ++yy, ++i) {
          ver[static_cast<size_t>(i)] = ScanPos{static_cast<uint8_t>(xx), static_cast<uint8_t>(yy)};
        }
      }
      for (size_t scan = 0; scan < 3; ++scan) {
        for (int n = 0; n < size * size; ++n) {
          const ScanPos p = order[static_cast<size_t>(log2)][scan][static_cast<size_t>(n)];
          position[static_cast<size_t>(log2)][scan][static_cast<size_t>((p.y << log2) + p.x)] =
              static_cast<uint8_t>(n);
        }
      }
    }
    for (size_t scan = 0; scan < 3; ++scan) {
      for (size_t n = 0; n < 16; ++n) {
        const ScanPos p = order[2][scan][n];
        const int k = (p.y << 2) + p.x;
        sig_ctx_4x4[scan][n] = k < cabac_tables::kCtxIdxMapSigCoeff4x4Size ? cabac_tables::kCtxIdxMapSigCoeff4x4[k] : 0;
        const int xp = p.x;
        const int yp = p.y;
        sig_ctx_pattern[scan][0][n] = static_cast<uint8_t>((xp + yp == 0) ? 2 : (xp + yp < 3) ? 1 : 0);
        sig_ctx_pattern[scan][1][n] = static_cast<uint8_t>(yp == 0 ? 2 : yp == 1 ? 1 : 0);
        sig_ctx_pattern[scan][2][n] = static_cast<uint8_t>(xp == 0 ? 2 : xp == 1 ? 1 : 0);
        sig_ctx_pattern[scan][3][n] = 2;
      }
    }
  }
};

const ScanTables& scan_tables() {
  static const ScanTables tables;
  return tables;
}

// The parsing-relevant state of the coding unit being parsed (7.3.8.5).
struct CodingUnit {
  int x0 = 0, y0 = 0, log2_size = 3;
  PredMode pred_mode = PredMode::kIntra;
  int part_mode = kPart2Nx2N;
  bool transquant_bypass = false;
  int intra_chroma_mode = kIntraDc;  // IntraPredModeC (8.4.3)
  bool intra_split = false;          // IntraSplitFlag
  int max_trafo_depth = 0;           // MaxTrafoDepth
};

// Parses one slice segment. Member functions carry the clause of the syntax structure or derivation they implement.
class SliceParser {
 public:
  SliceParser(const Sps& sps, const Pps& pps, const CtbLayout& layout, const SliceHeader& header, const uint8_t* rbsp,
              size_t rbsp_size, size_t data_offset, const std::vector<size_t>& entry_points, PictureCodingState& pic)
      : sps_(sps),
        pps_(pps),
        layout_(layout),
        sh_(header),
        data_(rbsp),
        size_(rbsp_size),
        data_offset_(data_offset),
        entry_points_(entry_points),
        pic_(pic),
        scans_(scan_tables()) {}

  void run();
  Location where() const;

 private:
  // Engine and context helpers.
  ContextModel& model(int index) {
    if (index < 0 || index >= ctx::NUM_CONTEXTS) fail(ErrorKind::InvalidValue, "context index out of range");
    return ctx_[static_cast<size_t>(index)];
  }
  [[gnu::always_inline]] int bin(int index) { return dec_.decode_decision(model(index)); }
  int bypass() { return dec_.decode_bypass(); }
  int ctb_ts(int rs) const;                                           // CtbAddrRsToTs (6.5.1)
  int tile_id_rs(int rs) const;                                       // TileId of a raster address (6.5.1)
  bool available(int x_curr, int y_curr, int x_nb, int y_nb) const;  // 6.4.1
  void init_contexts_for_slice();                                     // 9.3.2.2
  void start_ctu_contexts(bool first_in_segment);                     // 9.3.1, 9.3.2.1
  void check_substream_end(size_t next_start);                        // 7.3.8.1 end_of_subset_one_bit, 9.3.2.5
  void check_segment_end();                                           // 7.3.8.1 end_of_slice_segment_flag

  // Syntax structures.
  void coding_tree_unit();                                            // 7.3.8.2
  void sao(int rx, int ry);                                           // 7.3.8.3
  void coding_quadtree(int x0, int y0, int log2_cb_size, int depth);  // 7.3.8.4
  void coding_unit(int x0, int y0, int log2_cb_size, int depth);      // 7.3.8.5
  int part_mode(bool intra, int log2_cb_size);                        // 7.3.8.5, 9.3.3.7
  void intra_modes(CodingUnit& cu);                                   // 7.3.8.5, 8.4.2, 8.4.3
  void pcm_sample(const CodingUnit& cu);                              // 7.3.8.7
  bool prediction_unit(const CodingUnit& cu, int x0, int y0, int w, int h, int part_idx, bool skip,
                       int depth);  // 7.3.8.6
  void mvd_coding(int32_t component[2]);                                                   // 7.3.8.9
  void transform_tree(const CodingUnit& cu, int x0, int y0, int x_base, int y_base, int log2_size, int depth,
                      int blk_idx, bool parent_cbf_cb, bool parent_cbf_cr);  // 7.3.8.8
  void transform_unit(const CodingUnit& cu, int x0, int y0, int x_base, int y_base, int log2_size, bool cbf_luma,
                      bool cbf_cb, bool cbf_cr, int blk_idx);  // 7.3.8.10
  void cu_qp_delta();                                          // 7.3.8.10, 9.3.3.10
  void cu_chroma_qp_offset();                                  // 7.3.8.10
  void residual_coding(const CodingUnit& cu, int x0, int y0, int log2_size, int c_idx);  // 7.3.8.11, 9.3.4.2.4-7
  int scan_idx(const CodingUnit& cu, int x0, int y0, int log2_size, int c_idx) const;    // 7.4.9.11

  // Helpers over the picture grid.
  void fill_cu(const CodingUnit& cu, int depth, bool skip);
  void fill_intra_mode(int x0, int y0, int size, int mode);
  void fill_pu(int x0, int y0, int w, int h, int32_t index);

  const Sps& sps_;
  const Pps& pps_;
  const CtbLayout& layout_;
  const SliceHeader& sh_;
  const uint8_t* data_;
  size_t size_;
  size_t data_offset_;
  const std::vector<size_t>& entry_points_;
  PictureCodingState& pic_;
  const ScanTables& scans_;

  CabacDecoder dec_;
  ContextSet ctx_{};
  std::vector<int> tile_col_start_;  // per CTB column: first CTB column of its tile
  int ctb_addr_rs_ = 0;
  int ctb_addr_ts_ = 0;
  int32_t slice_addr_rs_ = 0;
  int substream_ = 0;
  int log2_min_cu_qp_delta_size_ = 0;
  int log2_min_cu_chroma_qp_offset_size_ = 0;
  int log2_max_transform_skip_size_ = 2;
  bool is_cu_qp_delta_coded_ = false;
  bool is_cu_chroma_qp_offset_coded_ = false;
  SliceSegmentInfo* info_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------
// Picture state.

int SliceParser::ctb_ts(int rs) const {
  if (rs < 0 || rs >= layout_.PicSizeInCtbsY || static_cast<size_t>(rs) >= layout_.CtbAddrRsToTs.size()) {
    fail(ErrorKind::InvalidValue, "CTB address " + std::to_string(rs) + " outside the picture");
  }
  return layout_.CtbAddrRsToTs[static_cast<size_t>(rs)];
}

int SliceParser::tile_id_rs(int rs) const {
  const int ts = ctb_ts(rs);
  if (ts < 0 || static_cast<size_t>(ts) >= layout_.TileId.size()) fail(ErrorKind::InvalidValue, "tile scan address");
  return layout_.TileId[static_cast<size_t>(ts)];
}

// 6.4.1 availability in z-scan order: inside the picture, not after the current block in z-scan order, in the same
// slice and the same tile. A CTB of the current picture not parsed yet has no slice address, so it is unavailable.
bool SliceParser::available(int x_curr, int y_curr, int x_nb, int y_nb) const {
  if (!pic_.in_picture(x_nb, y_nb)) return false;
  const int log2_ctb = sps_.CtbLog2SizeY;
  const int nb_rs = (y_nb >> log2_ctb) * layout_.PicWidthInCtbsY + (x_nb >> log2_ctb);
  const int cur_rs = (y_curr >> log2_ctb) * layout_.PicWidthInCtbsY + (x_curr >> log2_ctb);
  if (nb_rs < 0 || static_cast<size_t>(nb_rs) >= pic_.ctb_slice_addr.size()) return false;
  // A neighbour in the CTB being parsed is in its slice and tile; otherwise both are compared.
  if (nb_rs != cur_rs) {
    if (pic_.ctb_slice_addr[static_cast<size_t>(nb_rs)] != slice_addr_rs_) return false;
    if (tile_id_rs(nb_rs) != tile_id_rs(cur_rs)) return false;
  }
  const int log2_tb = layout_.MinTbLog2SizeY;
  const int xn = x_nb >> log2_tb, yn = y_nb >> log2_tb, xc = x_curr >> log2_tb, yc = y_curr >> log2_tb;
  if (xn >= layout_.min_tb_width || yn >= layout_.min_tb_height || xc < 0 || yc < 0 || xc >= layout_.min_tb_width ||
      yc >= layout_.min_tb_height) {
    fail(ErrorKind::InvalidValue, "MinTbAddrZs lookup outside the picture");
  }
  return layout_.min_tb_addr_zs(xn, yn) <= layout_.min_tb_addr_zs(xc, yc);
}

Location SliceParser::where() const {
  Location w;
  w.picture = pic_.picture_index;
  w.slice = static_cast<int64_t>(pic_.slices.size()) - 1;
  w.ctu = ctb_addr_rs_;
  w.bit_position = static_cast<int64_t>(dec_.bit_position());
  return w;
}

// Fills one row of a CU or PU on the 4x4 grid (n = 1, 2, 4, 8 or 16 entries) with stores of a size known at compile
// time for the short rows, rather than a memset call each.
template <typename T>
inline void fill_row(T* p, size_t n, T v) {
  switch (n) {
    case 1: p[0] = v; break;
    case 2: std::fill_n(p, 2, v); break;
    case 4: std::fill_n(p, 4, v); break;
    case 8: std::fill_n(p, 8, v); break;
    default: std::fill_n(p, n, v); break;
  }
}

void SliceParser::fill_cu(const CodingUnit& cu, int depth, bool skip) {
  const auto n = static_cast<size_t>(1) << (cu.log2_size - 2);
  const size_t first = pic_.grid_index(cu.x0, cu.y0);
  const auto stride = static_cast<size_t>(pic_.grid_width);
  if (pic_.grid_index(cu.x0, cu.y0 + 4 * static_cast<int>(n - 1)) + n > pic_.ct_depth.size()) {
    fail(ErrorKind::InvalidValue, "CU outside the grid");
  }
  // Raw row pointers: byte stores through the vectors would otherwise make the compiler reload every vector's data
  // pointer after each store.
  uint8_t* const ct_depth = pic_.ct_depth.data();
  uint8_t* const skip_flag = pic_.cu_skip_flag.data();
  PredMode* const pred_mode = pic_.pred_mode.data();
  uint8_t* const part_mode = pic_.part_mode.data();
  uint8_t* const log2_cb_size = pic_.log2_cb_size.data();
  uint8_t* const intra_mode = pic_.intra_luma_mode.data();
  int32_t* const pu_index = pic_.pu_index.data();
  for (size_t j = 0; j < n; ++j) {
    const size_t row = first + j * stride;
    fill_row(ct_depth + row, n, static_cast<uint8_t>(depth));
    fill_row(skip_flag + row, n, static_cast<uint8_t>(skip ? 1 : 0));
    fill_row(pred_mode + row, n, cu.pred_mode);
    fill_row(part_mode + row, n, static_cast<uint8_t>(cu.part_mode));
    fill_row(log2_cb_size + row, n, static_cast<uint8_t>(cu.log2_size));
    fill_row(intra_mode + row, n, static_cast<uint8_t>(kIntraDc));
    fill_row(pu_index + row, n, int32_t{-1});
  }
}

void SliceParser::fill_intra_mode(int x0, int y0, int size, int mode) {
  const int n = std::max(1, size >> 2);
  for (int j = 0; j < n; ++j) {
    const size_t row = pic_.grid_index(x0, y0 + 4 * j);
    if (row + static_cast<size_t>(n) > pic_.intra_luma_mode.size()) fail(ErrorKind::InvalidValue, "PU outside grid");
    fill_row(pic_.intra_luma_mode.data() + row, static_cast<size_t>(n), static_cast<uint8_t>(mode));
  }
}

void SliceParser::fill_pu(int x0, int y0, int w, int h, int32_t index) {
  for (int y = y0; y < y0 + h; y += 4) {
    const size_t row = pic_.grid_index(x0, y);
    const size_t n = static_cast<size_t>(w >> 2);
    if (row + n > pic_.pu_index.size()) fail(ErrorKind::InvalidValue, "PU outside the grid");
    fill_row(pic_.pu_index.data() + row, n, index);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.1 slice_segment_data() with the CABAC initialisation, synchronisation and storage of 9.3.1 / 9.3.2.

void SliceParser::init_contexts_for_slice() {
  init_contexts(ctx_, init_type(sh_.slice_type, sh_.cabac_init_flag), sh_.SliceQpY);
}

// 9.3.1 / 9.3.2.1: contexts at the start of a CTU that begins a tile, a WPP row of a tile, or the slice segment.
void SliceParser::start_ctu_contexts(bool first_in_segment) {
  const int w = layout_.PicWidthInCtbsY;
  const int ctb_x = ctb_addr_rs_ % w;
  const bool first_in_tile =
      ctb_addr_ts_ == 0 || layout_.TileId[static_cast<size_t>(ctb_addr_ts_)] !=
                               layout_.TileId[static_cast<size_t>(ctb_addr_ts_ - 1)];
  const bool first_in_tile_row = ctb_x == tile_col_start_[static_cast<size_t>(ctb_x)];
  if (first_in_tile) {
    init_contexts_for_slice();
  } else if (pps_.entropy_coding_sync_enabled_flag && first_in_tile_row) {
    // Synchronisation from the CTB above-right (xCtb + CtbSizeY, yCtb - CtbSizeY) when it is available (9.3.2.4).
    const int x0 = ctb_x << sps_.CtbLog2SizeY;
    const int y0 = (ctb_addr_rs_ / w) << sps_.CtbLog2SizeY;
    if (available(x0, y0, x0 + sps_.CtbSizeY, y0 - sps_.CtbSizeY)) {
      if (!pic_.wpp_contexts_valid) fail(ErrorKind::InvalidValue, "WPP synchronisation without stored contexts");
      ctx_ = pic_.wpp_contexts;
    } else {
      init_contexts_for_slice();
    }
  } else if (first_in_segment && sh_.dependent_slice_segment_flag) {
    if (!pic_.dependent_contexts_valid) {
      fail(ErrorKind::InvalidValue, "dependent slice segment without a preceding slice segment's contexts");
    }
    ctx_ = pic_.dependent_contexts;
  } else if (first_in_segment) {
    init_contexts_for_slice();
  }
}

void SliceParser::check_substream_end(size_t next_start) {
  if (dec_.decode_terminate() != 1) fail(ErrorKind::Desync, "end_of_subset_one_bit is 0");
  if (dec_.overran()) fail(ErrorKind::Truncated, "substream runs past the end of the slice segment data");
  if (!dec_.trailing_bits_ok()) fail(ErrorKind::Desync, "byte_alignment() after end_of_subset_one_bit is not 1 0..0");
  if (dec_.bytes_consumed() != next_start) {
    fail(ErrorKind::Desync, "substream " + std::to_string(substream_) + " ends at RBSP byte " +
                                std::to_string(dec_.bytes_consumed()) + ", its entry point says " +
                                std::to_string(next_start));
  }
}

void SliceParser::check_segment_end() {
  if (dec_.overran()) fail(ErrorKind::Truncated, "slice segment data runs past the end of the NAL unit");
  if (!dec_.trailing_bits_ok()) {
    fail(ErrorKind::Desync, "rbsp_slice_segment_trailing_bits() after end_of_slice_segment_flag is not 1 0..0");
  }
  if (static_cast<size_t>(substream_) != entry_points_.size()) {
    fail(ErrorKind::Desync, "slice segment ends in substream " + std::to_string(substream_) + " of " +
                                std::to_string(entry_points_.size() + 1));
  }
  // Only cabac_zero_words (0x0000, 9.3.2.5 / 7.3.2.10) may follow the trailing bits.
  for (size_t i = dec_.bytes_consumed(); i < size_; ++i) {
    if (data_[i] != 0) {
      fail(ErrorKind::Desync, "slice segment data ends at RBSP byte " + std::to_string(dec_.bytes_consumed()) +
                                  " but non-zero data follows at byte " + std::to_string(i) + " of " +
                                  std::to_string(size_));
    }
  }
}

void SliceParser::run() {
  const int pic_size = layout_.PicSizeInCtbsY;
  const int w = layout_.PicWidthInCtbsY;
  const auto n = static_cast<size_t>(pic_size);
  const size_t min_tbs = static_cast<size_t>(std::max(0, layout_.min_tb_width)) *
                         static_cast<size_t>(std::max(0, layout_.min_tb_height));
  if (pic_size != pic_.pic_width_in_ctbs * pic_.pic_height_in_ctbs || w != pic_.pic_width_in_ctbs ||
      layout_.CtbLog2SizeY != pic_.ctb_log2_size || layout_.MinTbLog2SizeY != sps_.MinTbLog2SizeY ||
      layout_.CtbAddrTsToRs.size() != n || layout_.CtbAddrRsToTs.size() != n || layout_.TileId.size() != n ||
      layout_.MinTbAddrZs.size() != min_tbs ||
      (layout_.min_tb_width << layout_.MinTbLog2SizeY) < pic_.pic_width ||
      (layout_.min_tb_height << layout_.MinTbLog2SizeY) < pic_.pic_height) {
    fail(ErrorKind::InvalidValue, "CTB layout does not match the picture state");
  }
  for (const int rs : layout_.CtbAddrTsToRs) {
    if (rs < 0 || rs >= pic_size) fail(ErrorKind::InvalidValue, "CtbAddrTsToRs entry outside the picture");
  }
  if (sh_.slice_segment_address >= static_cast<uint32_t>(pic_size)) {
    fail(ErrorKind::InvalidValue, "slice_segment_address " + std::to_string(sh_.slice_segment_address) +
                                      " outside the picture");
  }
  if (sh_.MaxNumMergeCand < 1 || sh_.MaxNumMergeCand > 5) fail(ErrorKind::InvalidValue, "MaxNumMergeCand");
  tile_col_start_.assign(static_cast<size_t>(w), 0);
  for (size_t c = 0; c + 1 < layout_.colBd.size(); ++c) {
    for (int x = layout_.colBd[c]; x < layout_.colBd[c + 1] && x < w; ++x) {
      tile_col_start_[static_cast<size_t>(x)] = layout_.colBd[c];
    }
  }
  log2_min_cu_qp_delta_size_ = sps_.CtbLog2SizeY - pps_.diff_cu_qp_delta_depth;
  log2_min_cu_chroma_qp_offset_size_ = sps_.CtbLog2SizeY - pps_.diff_cu_chroma_qp_offset_depth;
  log2_max_transform_skip_size_ = pps_.log2_max_transform_skip_block_size_minus2 + 2;

  ctb_addr_rs_ = static_cast<int>(sh_.slice_segment_address);
  ctb_addr_ts_ = ctb_ts(ctb_addr_rs_);
  if (sh_.dependent_slice_segment_flag) {
    if (pic_.last_slice_addr_rs < 0) fail(ErrorKind::InvalidValue, "dependent slice segment starts the picture");
    slice_addr_rs_ = pic_.last_slice_addr_rs;
  } else {
    slice_addr_rs_ = static_cast<int32_t>(sh_.slice_segment_address);
  }
  pic_.last_slice_addr_rs = slice_addr_rs_;

  SliceSegmentInfo info;
  info.slice_segment_address = sh_.slice_segment_address;
  info.slice_addr_rs = static_cast<uint32_t>(slice_addr_rs_);
  info.dependent_slice_segment_flag = sh_.dependent_slice_segment_flag;
  info.slice_type = sh_.slice_type;
  info.first_pu = pic_.pus.size();
  pic_.slices.push_back(info);
  info_ = &pic_.slices.back();

  if (data_ == nullptr || data_offset_ > size_) fail(ErrorKind::Truncated, "slice segment data outside the NAL unit");
  dec_.init(data_, size_);
  dec_.reinit_at(data_offset_);
  substream_ = 0;
  info_->substreams = 1;
  bool first_in_segment = true;
  for (;;) {
    if (pic_.ctb_slice_addr[static_cast<size_t>(ctb_addr_rs_)] >= 0) {
      fail(ErrorKind::Desync, "CTU " + std::to_string(ctb_addr_rs_) + " is coded twice");
    }
    start_ctu_contexts(first_in_segment);
    first_in_segment = false;
    pic_.ctb_slice_addr[static_cast<size_t>(ctb_addr_rs_)] = slice_addr_rs_;
    coding_tree_unit();
    // 9.3.2.3 storage for WPP after the second CTB of a row of a tile.
    const int ctb_x = ctb_addr_rs_ % w;
    if (pps_.entropy_coding_sync_enabled_flag && ctb_x - tile_col_start_[static_cast<size_t>(ctb_x)] == 1) {
      pic_.wpp_contexts = ctx_;
      pic_.wpp_contexts_valid = true;
    }
    const int end_of_slice_segment_flag = dec_.decode_terminate();
    if (dec_.overran()) fail(ErrorKind::Truncated, "slice segment data runs past the end of the NAL unit");
    ++info_->ctus;
    ++pic_.counts.ctus;
    if (end_of_slice_segment_flag) {
      check_segment_end();
      if (pps_.dependent_slice_segments_enabled_flag) {  // 9.3.2.3 storage for a following dependent segment
        pic_.dependent_contexts = ctx_;
        pic_.dependent_contexts_valid = true;
      }
      return;
    }
    ++ctb_addr_ts_;
    if (ctb_addr_ts_ >= pic_size) {
      fail(ErrorKind::Desync, "CTUs run past the end of the picture without end_of_slice_segment_flag");
    }
    ctb_addr_rs_ = layout_.CtbAddrTsToRs[static_cast<size_t>(ctb_addr_ts_)];
    const bool new_tile = layout_.TileId[static_cast<size_t>(ctb_addr_ts_)] !=
                          layout_.TileId[static_cast<size_t>(ctb_addr_ts_ - 1)];
    const int new_x = ctb_addr_rs_ % w;
    const bool new_row = new_x == tile_col_start_[static_cast<size_t>(new_x)];  // first CTB of a row of a tile
    if ((pps_.tiles_enabled_flag && new_tile) || (pps_.entropy_coding_sync_enabled_flag && new_row)) {
      if (static_cast<size_t>(substream_) >= entry_points_.size()) {
        fail(ErrorKind::Desync, "substream " + std::to_string(substream_ + 1) + " has no entry point");
      }
      const size_t next_start = entry_points_[static_cast<size_t>(substream_)];
      check_substream_end(next_start);
      ++substream_;
      ++info_->substreams;
      dec_.reinit_at(next_start);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.2 coding_tree_unit() and 7.3.8.3 sao().

void SliceParser::coding_tree_unit() {
  const int w = layout_.PicWidthInCtbsY;
  const int x_ctb = (ctb_addr_rs_ % w) << sps_.CtbLog2SizeY;
  const int y_ctb = (ctb_addr_rs_ / w) << sps_.CtbLog2SizeY;
  if (sh_.slice_sao_luma_flag || sh_.slice_sao_chroma_flag) sao(ctb_addr_rs_ % w, ctb_addr_rs_ / w);
  coding_quadtree(x_ctb, y_ctb, sps_.CtbLog2SizeY, 0);
  if (dec_.overran()) fail(ErrorKind::Truncated, "CTU runs past the end of the NAL unit");
}

void SliceParser::sao(int rx, int ry) {
  ++pic_.counts.sao_ctus;
  const int w = layout_.PicWidthInCtbsY;
  const int tile = layout_.TileId[static_cast<size_t>(ctb_addr_ts_)];
  bool merge_left = false;
  bool merge_up = false;
  if (rx > 0) {
    const bool left_in_slice = ctb_addr_rs_ > slice_addr_rs_;
    const bool left_in_tile = tile == tile_id_rs(ctb_addr_rs_ - 1);
    if (left_in_slice && left_in_tile) merge_left = bin(ctx::SAO_MERGE_FLAG) != 0;
  }
  if (ry > 0 && !merge_left) {
    const bool up_in_slice = ctb_addr_rs_ - w >= slice_addr_rs_;
    const bool up_in_tile = tile == tile_id_rs(ctb_addr_rs_ - w);
    if (up_in_slice && up_in_tile) merge_up = bin(ctx::SAO_MERGE_FLAG) != 0;
  }
  if (merge_left || merge_up) return;
  const int components = sps_.ChromaArrayType != 0 ? 3 : 1;
  int sao_type_idx = 0;
  for (int c_idx = 0; c_idx < components; ++c_idx) {
    if (!((sh_.slice_sao_luma_flag && c_idx == 0) || (sh_.slice_sao_chroma_flag && c_idx > 0))) continue;
    if (c_idx < 2) {  // sao_type_idx_luma / sao_type_idx_chroma: TR cMax 2, bin 0 context-coded, bin 1 bypass
      sao_type_idx = 0;
      if (bin(ctx::SAO_TYPE_IDX)) sao_type_idx = 1 + bypass();
    }
    if (sao_type_idx == 0) continue;
    const int bit_depth = c_idx == 0 ? sps_.BitDepthY : sps_.BitDepthC;
    const uint32_t c_max = (1u << (std::min(bit_depth, 10) - 5)) - 1;
    uint32_t offset_abs[4] = {0, 0, 0, 0};
    for (uint32_t& a : offset_abs) a = dec_.decode_tr_bypass(c_max, 0);  // sao_offset_abs
    if (sao_type_idx == 1) {
      for (const uint32_t a : offset_abs) {
        if (a != 0) bypass();  // sao_offset_sign
      }
      dec_.decode_bypass_bits(5);  // sao_band_position, FL cMax 31
    } else if (c_idx < 2) {
      dec_.decode_bypass_bits(2);  // sao_eo_class_luma / sao_eo_class_chroma, FL cMax 3
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.4 coding_quadtree().

void SliceParser::coding_quadtree(int x0, int y0, int log2_cb_size, int depth) {
  const int size = 1 << log2_cb_size;
  bool split = false;
  if (x0 + size <= sps_.pic_width_in_luma_samples && y0 + size <= sps_.pic_height_in_luma_samples &&
      log2_cb_size > sps_.MinCbLog2SizeY) {
    // split_cu_flag, ctxInc from the CtDepth of the left and above neighbours (9.3.4.2.2).
    int ctx_inc = 0;
    if (available(x0, y0, x0 - 1, y0) && pic_.ct_depth[pic_.grid_index(x0 - 1, y0)] > depth) ++ctx_inc;
    if (available(x0, y0, x0, y0 - 1) && pic_.ct_depth[pic_.grid_index(x0, y0 - 1)] > depth) ++ctx_inc;
    split = bin(ctx::SPLIT_CU_FLAG + ctx_inc) != 0;
  } else {
    split = log2_cb_size > sps_.MinCbLog2SizeY;
  }
  if (pps_.cu_qp_delta_enabled_flag && log2_cb_size >= log2_min_cu_qp_delta_size_) is_cu_qp_delta_coded_ = false;
  if (sh_.cu_chroma_qp_offset_enabled_flag && log2_cb_size >= log2_min_cu_chroma_qp_offset_size_) {
    is_cu_chroma_qp_offset_coded_ = false;
  }
  if (split) {
    const int x1 = x0 + (size >> 1);
    const int y1 = y0 + (size >> 1);
    coding_quadtree(x0, y0, log2_cb_size - 1, depth + 1);
    if (x1 < sps_.pic_width_in_luma_samples) coding_quadtree(x1, y0, log2_cb_size - 1, depth + 1);
    if (y1 < sps_.pic_height_in_luma_samples) coding_quadtree(x0, y1, log2_cb_size - 1, depth + 1);
    if (x1 < sps_.pic_width_in_luma_samples && y1 < sps_.pic_height_in_luma_samples) {
      coding_quadtree(x1, y1, log2_cb_size - 1, depth + 1);
    }
  } else {
    if (x0 + size > sps_.pic_width_in_luma_samples || y0 + size > sps_.pic_height_in_luma_samples) {
      fail(ErrorKind::InvalidValue, "coding unit crosses the picture boundary");
    }
    coding_unit(x0, y0, log2_cb_size, depth);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.5 coding_unit().

// part_mode (binarisation 9.3.3.7; ctxInc 9.3.4.2.1, Table 9-41): intra one bin (ctxInc 0, 1 = PART_2Nx2N). Inter:
// bin 0 (ctxInc 0) 1 = PART_2Nx2N; bin 1 (ctxInc 1) 1 = horizontal split. At log2CbSize == MinCbLog2SizeY > 3 a
// vertical split takes bin 2 (ctxInc 2: 1 = PART_Nx2N, 0 = PART_NxN). Above the minimum size with AMP, bin 2
// (ctxInc 3) 1 = symmetric, else bin 3 (bypass) picks the quarter: 0 = nU / nL, 1 = nD / nR.
int SliceParser::part_mode(bool intra, int log2_cb_size) {
  if (intra) return bin(ctx::PART_MODE) ? kPart2Nx2N : kPartNxN;
  if (bin(ctx::PART_MODE)) return kPart2Nx2N;
  const bool horizontal = bin(ctx::PART_MODE + 1) != 0;
  if (log2_cb_size == sps_.MinCbLog2SizeY) {
    if (horizontal) return kPart2NxN;
    if (log2_cb_size == 3) return kPartNx2N;
    return bin(ctx::PART_MODE + 2) ? kPartNx2N : kPartNxN;
  }
  if (!sps_.amp_enabled_flag) return horizontal ? kPart2NxN : kPartNx2N;
  if (bin(ctx::PART_MODE + 3)) return horizontal ? kPart2NxN : kPartNx2N;
  const int position = bypass();
  if (horizontal) return position ? kPart2NxnD : kPart2NxnU;
  return position ? kPartnRx2N : kPartnLx2N;
}

void SliceParser::coding_unit(int x0, int y0, int log2_cb_size, int depth) {
  CodingUnit cu;
  cu.x0 = x0;
  cu.y0 = y0;
  cu.log2_size = log2_cb_size;
  const int n_cb_s = 1 << log2_cb_size;
  if (pps_.transquant_bypass_enabled_flag) {
    cu.transquant_bypass = bin(ctx::CU_TRANSQUANT_BYPASS_FLAG) != 0;
    if (cu.transquant_bypass) ++pic_.counts.transquant_bypass_cus;
  }
  bool skip = false;
  if (!sh_.is_intra()) {
    // cu_skip_flag, ctxInc from the skip flags of the left and above neighbours (9.3.4.2.2).
    int ctx_inc = 0;
    if (available(x0, y0, x0 - 1, y0) && pic_.cu_skip_flag[pic_.grid_index(x0 - 1, y0)]) ++ctx_inc;
    if (available(x0, y0, x0, y0 - 1) && pic_.cu_skip_flag[pic_.grid_index(x0, y0 - 1)]) ++ctx_inc;
    skip = bin(ctx::CU_SKIP_FLAG + ctx_inc) != 0;
  }
  if (skip) {
    cu.pred_mode = PredMode::kSkip;
    fill_cu(cu, depth, true);
    ++pic_.counts.skip_cus;
    prediction_unit(cu, x0, y0, n_cb_s, n_cb_s, 0, true, depth);
    return;
  }
  cu.pred_mode = PredMode::kIntra;
  if (!sh_.is_intra()) cu.pred_mode = bin(ctx::PRED_MODE_FLAG) ? PredMode::kIntra : PredMode::kInter;
  const bool intra = cu.pred_mode == PredMode::kIntra;
  if (!intra || log2_cb_size == sps_.MinCbLog2SizeY) cu.part_mode = part_mode(intra, log2_cb_size);
  if (intra && cu.part_mode == kPartNxN && log2_cb_size <= sps_.MinTbLog2SizeY) {
    fail(ErrorKind::InvalidValue, "intra NxN partitioning of a coding block not larger than the minimum TB");
  }
  cu.intra_split = intra && cu.part_mode == kPartNxN;
  fill_cu(cu, depth, false);
  bool pcm = false;
  bool merge_2nx2n = false;
  if (intra) {
    ++pic_.counts.intra_cus;
    if (cu.part_mode == kPart2Nx2N && sps_.pcm_enabled_flag && log2_cb_size >= sps_.Log2MinIpcmCbSizeY &&
        log2_cb_size <= sps_.Log2MaxIpcmCbSizeY) {
      pcm = dec_.decode_terminate() != 0;  // pcm_flag
    }
    if (pcm) {
      ++pic_.counts.pcm_cus;
      pcm_sample(cu);
      return;
    }
    intra_modes(cu);
  } else {
    ++pic_.counts.inter_cus;
    const int h = n_cb_s / 2, q = n_cb_s / 4;
    switch (cu.part_mode) {
      case kPart2Nx2N: merge_2nx2n = prediction_unit(cu, x0, y0, n_cb_s, n_cb_s, 0, false, depth); break;
      case kPart2NxN:
        prediction_unit(cu, x0, y0, n_cb_s, h, 0, false, depth);
        prediction_unit(cu, x0, y0 + h, n_cb_s, h, 1, false, depth);
        break;
      case kPartNx2N:
        prediction_unit(cu, x0, y0, h, n_cb_s, 0, false, depth);
        prediction_unit(cu, x0 + h, y0, h, n_cb_s, 1, false, depth);
        break;
      case kPart2NxnU:
        prediction_unit(cu, x0, y0, n_cb_s, q, 0, false, depth);
        prediction_unit(cu, x0, y0 + q, n_cb_s, n_cb_s - q, 1, false, depth);
        break;
      case kPart2NxnD:
        prediction_unit(cu, x0, y0, n_cb_s, n_cb_s - q, 0, false, depth);
        prediction_unit(cu, x0, y0 + n_cb_s - q, n_cb_s, q, 1, false, depth);
        break;
      case kPartnLx2N:
        prediction_unit(cu, x0, y0, q, n_cb_s, 0, false, depth);
        prediction_unit(cu, x0 + q, y0, n_cb_s - q, n_cb_s, 1, false, depth);
        break;
      case kPartnRx2N:
        prediction_unit(cu, x0, y0, n_cb_s - q, n_cb_s, 0, false, depth);
        prediction_unit(cu, x0 + n_cb_s - q, y0, q, n_cb_s, 1, false, depth);
        break;
      default:  // kPartNxN
        prediction_unit(cu, x0, y0, h, h, 0, false, depth);
        prediction_unit(cu, x0 + h, y0, h, h, 1, false, depth);
        prediction_unit(cu, x0, y0 + h, h, h, 2, false, depth);
        prediction_unit(cu, x0 + h, y0 + h, h, h, 3, false, depth);
        break;
    }
  }
  bool rqt_root_cbf = true;
  if (!intra && !(cu.part_mode == kPart2Nx2N && merge_2nx2n)) rqt_root_cbf = bin(ctx::RQT_ROOT_CBF) != 0;
  if (!rqt_root_cbf) return;
  cu.max_trafo_depth = intra ? sps_.max_transform_hierarchy_depth_intra + (cu.intra_split ? 1 : 0)
                             : sps_.max_transform_hierarchy_depth_inter;
  transform_tree(cu, x0, y0, x0, y0, log2_cb_size, 0, 0, false, false);
}

// 7.3.8.7 pcm_sample(): the engine stopped at pcm_flag (9.3.4.3.5); the samples start at the next byte and are
// skipped, then the engine restarts after them (9.3.2.5). The contexts are kept.
void SliceParser::pcm_sample(const CodingUnit& cu) {
  if (!dec_.trailing_bits_ok()) fail(ErrorKind::Desync, "pcm_alignment_zero_bit is not 0");
  const uint64_t luma = uint64_t{1} << (2 * cu.log2_size);
  uint64_t bits = luma * static_cast<uint64_t>(sps_.pcm_sample_bit_depth_luma_minus1 + 1);
  if (sps_.ChromaArrayType != 0) {
    const uint64_t chroma = luma / static_cast<uint64_t>(sps_.SubWidthC * sps_.SubHeightC);
    bits += 2 * chroma * static_cast<uint64_t>(sps_.pcm_sample_bit_depth_chroma_minus1 + 1);
  }
  const uint64_t start = dec_.bytes_consumed();
  const uint64_t end = start + (bits + 7) / 8;
  if (end > size_) fail(ErrorKind::Truncated, "PCM samples run past the end of the NAL unit");
  dec_.reinit_at(static_cast<size_t>(end));
}

// prev_intra_luma_pred_flag / mpm_idx / rem_intra_luma_pred_mode / intra_chroma_pred_mode (7.3.8.5) with the luma
// mode derivation (8.4.2) and the chroma mode derivation (8.4.3).
void SliceParser::intra_modes(CodingUnit& cu) {
  const int n_cb_s = 1 << cu.log2_size;
  const int pb_offset = cu.part_mode == kPartNxN ? n_cb_s / 2 : n_cb_s;
  const int parts = cu.part_mode == kPartNxN ? 4 : 1;
  int prev_flag[4] = {0, 0, 0, 0};
  for (int p = 0; p < parts; ++p) prev_flag[p] = bin(ctx::PREV_INTRA_LUMA_PRED_FLAG);
  int first_mode = kIntraDc;
  for (int p = 0; p < parts; ++p) {
    const int x_pb = cu.x0 + (p & 1) * pb_offset;
    const int y_pb = cu.y0 + (p >> 1) * pb_offset;
    int mpm_idx = -1;
    int rem = 0;
    if (prev_flag[p]) {
      mpm_idx = static_cast<int>(dec_.decode_tr_bypass(2, 0));
    } else {
      rem = static_cast<int>(dec_.decode_bypass_bits(5));
    }
    // 8.4.2: candidates from the left (xPb - 1, yPb) and above (xPb, yPb - 1) neighbours; DC when unavailable, not
    // intra or PCM (stored as DC), and for the above neighbour outside the current CTB row.
    int cand_a = kIntraDc;
    int cand_b = kIntraDc;
    if (available(x_pb, y_pb, x_pb - 1, y_pb)) cand_a = pic_.intra_luma_mode[pic_.grid_index(x_pb - 1, y_pb)];
    const int ctb_top = (y_pb >> sps_.CtbLog2SizeY) << sps_.CtbLog2SizeY;
    if (y_pb - 1 >= ctb_top && available(x_pb, y_pb, x_pb, y_pb - 1)) {
      cand_b = pic_.intra_luma_mode[pic_.grid_index(x_pb, y_pb - 1)];
    }
    int list[3];
    if (cand_a == cand_b) {
      if (cand_a < 2) {
        list[0] = kIntraPlanar;
        list[1] = kIntraDc;
        list[2] = kIntraAngular26;
      } else {
        list[0] = cand_a;
        list[1] = 2 + ((cand_a + 29) % 32);
        list[2] = 2 + ((cand_a - 2 + 1) % 32);
      }
    } else {
      list[0] = cand_a;
      list[1] = cand_b;
      if (cand_a != kIntraPlanar && cand_b != kIntraPlanar) {
        list[2] = kIntraPlanar;
      } else if (cand_a != kIntraDc && cand_b != kIntraDc) {
        list[2] = kIntraDc;
      } else {
        list[2] = kIntraAngular26;
      }
    }
    int mode = 0;
    if (mpm_idx >= 0) {
      mode = list[mpm_idx];
    } else {
      std::sort(list, list + 3);
      mode = rem;
      for (const int m : list) {
        if (mode >= m) ++mode;
      }
    }
    fill_intra_mode(x_pb, y_pb, pb_offset, mode);
    if (p == 0) first_mode = mode;
  }
  if (sps_.ChromaArrayType == 0) return;
  // intra_chroma_pred_mode: bin 0 context-coded (0 -> 4), else two bypass bins give 0..3 (9.3.3.8).
  int chroma = 4;
  if (bin(ctx::INTRA_CHROMA_PRED_MODE)) chroma = static_cast<int>(dec_.decode_bypass_bits(2));
  // 8.4.3 (Table 8-2): 0 planar, 1 angular 26, 2 angular 10, 3 DC, 4 the luma mode; 34 replaces a duplicate.
  static constexpr int kChromaModes[4] = {kIntraPlanar, kIntraAngular26, kIntraAngular10, kIntraDc};
  if (chroma == 4) {
    cu.intra_chroma_mode = first_mode;
  } else {
    const int m = kChromaModes[chroma];
    cu.intra_chroma_mode = m == first_mode ? 34 : m;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.6 prediction_unit() and 7.3.8.9 mvd_coding(). Returns merge_flag.

bool SliceParser::prediction_unit(const CodingUnit& cu, int x0, int y0, int w, int h, int part_idx, bool skip,
                                  int depth) {
  // Filled in place: a PU built on the stack and copied whole would re-read fields just stored one by one.
  const auto index = static_cast<int32_t>(pic_.pus.size());
  PredictionUnit& pu = pic_.pus.emplace_back();
  pu.x = x0;
  pu.y = y0;
  pu.w = w;
  pu.h = h;
  pu.part_idx = static_cast<uint8_t>(part_idx);
  pu.log2_cb_size = static_cast<uint8_t>(cu.log2_size);
  pu.part_mode = static_cast<uint8_t>(cu.part_mode);
  const int max_merge = sh_.MaxNumMergeCand;
  pu.merge_flag = skip ? true : bin(ctx::MERGE_FLAG) != 0;
  if (pu.merge_flag) {
    // merge_idx: TR cMax MaxNumMergeCand - 1, bin 0 context-coded, the rest bypass.
    int idx = 0;
    if (max_merge > 1 && bin(ctx::MERGE_IDX)) {
      idx = 1;
      while (idx < max_merge - 1 && bypass()) ++idx;
    }
    pu.merge_idx = static_cast<uint8_t>(idx);
    ++pic_.counts.merge_pus;
  } else {
    int idc = kPredL0;
    if (sh_.is_b()) {
      // inter_pred_idc (binarisation 9.3.3.9, ctxInc Table 9-41): with nPbW + nPbH != 12, bin 0 (ctxInc CtDepth) says
      // PRED_BI; the last bin (ctxInc 4) chooses PRED_L0 / PRED_L1.
      if (w + h != 12 && bin(ctx::INTER_PRED_IDC + depth)) {
        idc = kPredBi;
      } else {
        idc = bin(ctx::INTER_PRED_IDC + 4) ? kPredL1 : kPredL0;
      }
    }
    pu.inter_pred_idc = static_cast<uint8_t>(idc);
    for (int list = 0; list < 2; ++list) {
      if (idc == (list == 0 ? kPredL1 : kPredL0)) continue;
      const int active = sh_.num_ref_idx_active(list);
      if (active < 1 || active > kMaxRefIdx) fail(ErrorKind::InvalidValue, "no active reference pictures");
      // ref_idx_lX: TR cMax num_ref_idx_active - 1, bins 0 and 1 context-coded, the rest bypass.
      int ref = 0;
      while (ref < active - 1) {
        const int b = ref < 2 ? bin(ctx::REF_IDX + ref) : bypass();
        if (!b) break;
        ++ref;
      }
      pu.ref_idx[list] = static_cast<int8_t>(ref);
      if (list == 1 && sh_.mvd_l1_zero_flag && idc == kPredBi) {
        pu.mvd[1][0] = 0;
        pu.mvd[1][1] = 0;
      } else {
        mvd_coding(pu.mvd[list]);
      }
      pu.mvp_flag[list] = static_cast<uint8_t>(bin(ctx::MVP_FLAG));
    }
    if (idc == kPredBi) ++pic_.counts.bi_pus;
  }
  ++pic_.counts.pus;
  fill_pu(x0, y0, w, h, index);
  return pu.merge_flag;
}

// 7.3.8.9 mvd_coding(): abs_mvd_greater0_flag[0..1], abs_mvd_greater1_flag[0..1], then per component
// abs_mvd_minus2 (EG1 bypass) and mvd_sign_flag (bypass).
void SliceParser::mvd_coding(int32_t component[2]) {
  int greater0[2];
  int greater1[2] = {0, 0};
  greater0[0] = bin(ctx::ABS_MVD_GREATER0);
  greater0[1] = bin(ctx::ABS_MVD_GREATER0);
  if (greater0[0]) greater1[0] = bin(ctx::ABS_MVD_GREATER1);
  if (greater0[1]) greater1[1] = bin(ctx::ABS_MVD_GREATER1);
  for (int c = 0; c < 2; ++c) {
    component[c] = 0;
    if (!greater0[c]) continue;
    int64_t abs_value = 1;
    if (greater1[c]) abs_value = static_cast<int64_t>(dec_.decode_egk_bypass(1)) + 2;
    const bool negative = bypass() != 0;
    if (abs_value > kMaxMvdAbs || (abs_value == kMaxMvdAbs && !negative)) {
      fail(ErrorKind::InvalidValue, "motion vector difference outside -2^15 .. 2^15 - 1");
    }
    component[c] = static_cast<int32_t>(negative ? -abs_value : abs_value);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.8 transform_tree() and 7.3.8.10 transform_unit().

void SliceParser::transform_tree(const CodingUnit& cu, int x0, int y0, int x_base, int y_base, int log2_size,
                                 int depth, int blk_idx, bool parent_cbf_cb, bool parent_cbf_cr) {
  if (log2_size < 2 || log2_size < sps_.MinTbLog2SizeY) {
    fail(ErrorKind::InvalidValue, "transform block smaller than the minimum transform block size");
  }
  bool split = false;
  if (log2_size <= sps_.MaxTbLog2SizeY && log2_size > sps_.MinTbLog2SizeY && depth < cu.max_trafo_depth &&
      !(cu.intra_split && depth == 0)) {
    split = bin(ctx::SPLIT_TRANSFORM_FLAG + 5 - log2_size) != 0;
  } else {
    const bool inter_split = sps_.max_transform_hierarchy_depth_inter == 0 && cu.pred_mode == PredMode::kInter &&
                             cu.part_mode != kPart2Nx2N && depth == 0;
    split = log2_size > sps_.MaxTbLog2SizeY || (cu.intra_split && depth == 0) || inter_split;
  }
  bool cbf_cb = false;
  bool cbf_cr = false;
  if (log2_size > 2 && sps_.ChromaArrayType != 0) {
    if (depth == 0 || parent_cbf_cb) cbf_cb = bin(ctx::CBF_CHROMA + depth) != 0;
    if (depth == 0 || parent_cbf_cr) cbf_cr = bin(ctx::CBF_CHROMA + depth) != 0;
  } else if (sps_.ChromaArrayType != 0 && depth > 0) {
    // 4x4 luma blocks of a split 8x8: the chroma cbfs are those of the parent (7.4.9.8).
    cbf_cb = parent_cbf_cb;
    cbf_cr = parent_cbf_cr;
  }
  if (split) {
    if (log2_size <= 2) fail(ErrorKind::InvalidValue, "transform tree split below 4x4");
    const int x1 = x0 + (1 << (log2_size - 1));
    const int y1 = y0 + (1 << (log2_size - 1));
    transform_tree(cu, x0, y0, x0, y0, log2_size - 1, depth + 1, 0, cbf_cb, cbf_cr);
    transform_tree(cu, x1, y0, x0, y0, log2_size - 1, depth + 1, 1, cbf_cb, cbf_cr);
    transform_tree(cu, x0, y1, x0, y0, log2_size - 1, depth + 1, 2, cbf_cb, cbf_cr);
    transform_tree(cu, x1, y1, x0, y0, log2_size - 1, depth + 1, 3, cbf_cb, cbf_cr);
    return;
  }
  bool cbf_luma = true;
  if (cu.pred_mode == PredMode::kIntra || depth != 0 || cbf_cb || cbf_cr) {
    cbf_luma = bin(ctx::CBF_LUMA + (depth == 0 ? 1 : 0)) != 0;
  }
  transform_unit(cu, x0, y0, x_base, y_base, log2_size, cbf_luma, cbf_cb, cbf_cr, blk_idx);
}

void SliceParser::transform_unit(const CodingUnit& cu, int x0, int y0, int x_base, int y_base, int log2_size,
                                 bool cbf_luma, bool cbf_cb, bool cbf_cr, int blk_idx) {
  const bool cbf_chroma = cbf_cb || cbf_cr;
  if (!cbf_luma && !cbf_chroma) return;
  if (pps_.cu_qp_delta_enabled_flag && !is_cu_qp_delta_coded_) cu_qp_delta();
  if (sh_.cu_chroma_qp_offset_enabled_flag && cbf_chroma && !cu.transquant_bypass && !is_cu_chroma_qp_offset_coded_) {
    cu_chroma_qp_offset();
  }
  if (cbf_luma) residual_coding(cu, x0, y0, log2_size, 0);
  if (sps_.ChromaArrayType == 0) return;
  if (log2_size > 2) {
    if (cbf_cb) residual_coding(cu, x0, y0, log2_size - 1, 1);
    if (cbf_cr) residual_coding(cu, x0, y0, log2_size - 1, 2);
  } else if (blk_idx == 3) {
    if (cbf_cb) residual_coding(cu, x_base, y_base, log2_size, 1);
    if (cbf_cr) residual_coding(cu, x_base, y_base, log2_size, 2);
  }
}

// cu_qp_delta_abs (prefix TU cMax 5, bin 0 ctxInc 0, bins 1..4 ctxInc 1; suffix EG0 bypass, 9.3.3.10) and
// cu_qp_delta_sign_flag (bypass). CuQpDeltaVal must lie in -(26 + QpBdOffsetY / 2) .. 25 + QpBdOffsetY / 2.
void SliceParser::cu_qp_delta() {
  int prefix = 0;
  while (prefix < 5 && bin(ctx::CU_QP_DELTA_ABS + (prefix == 0 ? 0 : 1))) ++prefix;
  int64_t abs_value = prefix;
  if (prefix == 5) abs_value += dec_.decode_egk_bypass(0);
  int64_t value = abs_value;
  if (abs_value > 0 && bypass()) value = -abs_value;
  if (value < -(26 + sps_.QpBdOffsetY / 2) || value > 25 + sps_.QpBdOffsetY / 2) {
    fail(ErrorKind::InvalidValue, "CuQpDeltaVal " + std::to_string(value) + " out of range");
  }
  if (value != 0) ++pic_.counts.cu_qp_deltas;
  is_cu_qp_delta_coded_ = true;
}

// cu_chroma_qp_offset_flag and cu_chroma_qp_offset_idx (TR cMax chroma_qp_offset_list_len_minus1, every bin
// context-coded with one context).
void SliceParser::cu_chroma_qp_offset() {
  const bool flag = bin(ctx::CU_CHROMA_QP_OFFSET_FLAG) != 0;
  if (flag && pps_.chroma_qp_offset_list_len_minus1 > 0) {
    int idx = 0;
    while (idx < pps_.chroma_qp_offset_list_len_minus1 && bin(ctx::CU_CHROMA_QP_OFFSET_IDX)) ++idx;
  }
  is_cu_chroma_qp_offset_coded_ = true;
}

// ---------------------------------------------------------------------------------------------------------------
// 7.3.8.11 residual_coding() with the ctxInc derivations of 9.3.4.2.4 .. 9.3.4.2.7.

// scanIdx (7.4.9.11): mode-dependent for intra 4x4 blocks and 8x8 luma blocks (4:2:0 / 4:0:0).
int SliceParser::scan_idx(const CodingUnit& cu, int x0, int y0, int log2_size, int c_idx) const {
  if (cu.pred_mode != PredMode::kIntra) return 0;
  if (!(log2_size == 2 || (log2_size == 3 && c_idx == 0))) return 0;
  const int mode = c_idx == 0 ? pic_.intra_luma_mode[pic_.grid_index(x0, y0)] : cu.intra_chroma_mode;
  if (mode >= 6 && mode <= 14) return 2;
  if (mode >= 22 && mode <= 30) return 1;
  return 0;
}

// coeff_abs_level_remaining (9.3.3.11): a prefix of at most four ones of TR with cMax 4 << cRiceParam, then, after
// four ones, an EG(cRiceParam + 1) suffix of value - (4 << cRiceParam) whose unary part continues the ones.
inline uint32_t coeff_abs_level_remaining(CabacDecoder& dec, int rice) {
  int ones = 0;
  while (dec.decode_bypass()) {
    if (++ones > kMaxRemainingPrefix) fail(ErrorKind::InvalidValue, "coeff_abs_level_remaining prefix too long");
  }
  if (ones < 4) return (static_cast<uint32_t>(ones) << rice) | dec.decode_bypass_bits(rice);
  const int k = ones - 4 + rice + 1;  // suffix bits of the EGk codeword
  if (k > 20) fail(ErrorKind::InvalidValue, "coeff_abs_level_remaining above the 16-bit coefficient range");
  const uint64_t value =
      (uint64_t{4} << rice) + (((uint64_t{1} << (ones - 4)) - 1) << (rice + 1)) + dec.decode_bypass_bits(k);
  if (value > static_cast<uint64_t>(kMaxCoeffAbsLevel)) {
    fail(ErrorKind::InvalidValue, "coeff_abs_level_remaining above the 16-bit coefficient range");
  }
  return static_cast<uint32_t>(value);
}

// Index of the highest set bit of a non-zero mask.
inline int highest_bit(uint32_t mask) { return 31 - __builtin_clz(mask); }

// Number of set bits of a 16-bit mask (without relying on a population-count instruction).
inline int bit_count16(uint32_t v) {
  v = v - ((v >> 1) & 0x5555u);
  v = (v & 0x3333u) + ((v >> 2) & 0x3333u);
  v = (v + (v >> 4)) & 0x0F0Fu;
  return static_cast<int>((v + (v >> 8)) & 0x1Fu);
}

// The engine runs on a local copy (written back at the end, and before an error propagates, so that the error's bit
// position is exact): its state then stays in registers across the context updates. No coefficient value is kept;
// the syntax is consumed exactly, which is all later layers need.
void SliceParser::residual_coding(const CodingUnit& cu, int x0, int y0, int log2_size, int c_idx) {
  if (log2_size < 2 || log2_size > 5) fail(ErrorKind::InvalidValue, "residual block size out of range");
  ++pic_.counts.coded_residual_blocks;
  const int scan = scan_idx(cu, x0, y0, log2_size, c_idx);
  CabacDecoder dec = dec_;
  try {
    const bool chroma = c_idx > 0;
    ContextModel* const models = ctx_.data();
    if (pps_.transform_skip_enabled_flag && !cu.transquant_bypass && log2_size <= log2_max_transform_skip_size_) {
      if (dec.decode_decision(models[ctx::TRANSFORM_SKIP_FLAG + (chroma ? 1 : 0)])) {
        ++pic_.counts.transform_skip_blocks;
      }
    }
    // last_sig_coeff_x_prefix / last_sig_coeff_y_prefix: TR cMax (log2TrafoSize << 1) - 1, ctxInc
    // (binIdx >> ctxShift) + ctxOffset (9.3.4.2.3).
    const int c_max = (log2_size << 1) - 1;
    const int ctx_offset = chroma ? 15 : 3 * (log2_size - 2) + ((log2_size - 1) >> 2);
    const int ctx_shift = chroma ? log2_size - 2 : (log2_size + 1) >> 2;
    ContextModel* const last_x_models = models + ctx::LAST_SIG_COEFF_X_PREFIX + ctx_offset;
    ContextModel* const last_y_models = models + ctx::LAST_SIG_COEFF_Y_PREFIX + ctx_offset;
    int prefix_x = 0;
    while (prefix_x < c_max && dec.decode_decision(last_x_models[prefix_x >> ctx_shift])) ++prefix_x;
    int prefix_y = 0;
    while (prefix_y < c_max && dec.decode_decision(last_y_models[prefix_y >> ctx_shift])) ++prefix_y;
    int last_x = prefix_x;
    int last_y = prefix_y;
    if (prefix_x > 3) {
      const int n = (prefix_x >> 1) - 1;
      last_x = (1 << n) * (2 + (prefix_x & 1)) + static_cast<int>(dec.decode_bypass_bits(n));
    }
    if (prefix_y > 3) {
      const int n = (prefix_y >> 1) - 1;
      last_y = (1 << n) * (2 + (prefix_y & 1)) + static_cast<int>(dec.decode_bypass_bits(n));
    }
    if (scan == 2) std::swap(last_x, last_y);
    const int size = 1 << log2_size;
    if (last_x >= size || last_y >= size) fail(ErrorKind::InvalidValue, "last significant coefficient outside block");

    // Position of the last significant coefficient in the scan: sub-block lastSubBlock, position lastScanPos.
    const int log2_sb = log2_size - 2;
    const auto s = static_cast<size_t>(scan);
    const auto& sb_scan = scans_.order[static_cast<size_t>(log2_sb)][s];
    const auto sb_index = static_cast<size_t>(((last_y >> 2) << log2_sb) + (last_x >> 2));
    const int last_sub_block = scans_.position[static_cast<size_t>(log2_sb)][s][sb_index];
    const int last_scan_pos = scans_.position[2][s][static_cast<size_t>(((last_y & 3) << 2) + (last_x & 3))];

    // coded_sub_block_flag of the sub-blocks so far, one row of bits per sub-block row (bit xS); the extra row and
    // column stay 0, so the right and below neighbours need no bounds test.
    uint16_t coded_rows[9] = {};
    ContextModel* const csbf_models = models + ctx::CODED_SUB_BLOCK_FLAG + (chroma ? 2 : 0);
    ContextModel* const sig_models = models + ctx::SIG_COEFF_FLAG + (chroma ? 27 : 0);
    ContextModel* const g1_models = models + ctx::COEFF_ABS_LEVEL_GREATER1_FLAG + (chroma ? 16 : 0);
    ContextModel* const g2_models = models + ctx::COEFF_ABS_LEVEL_GREATER2_FLAG + (chroma ? 4 : 0);
    // The sigCtx offset of 9.3.4.2.5 for 8x8 .. 32x32 blocks, without the 3 that luma adds outside sub-block 0.
    const int luma_offset = log2_size == 3 ? (scan == 0 ? 9 : 15) : 21;
    const int sig_offset = chroma ? (log2_size == 3 ? 9 : 12) : luma_offset;
    const bool sign_hiding = pps_.sign_data_hiding_enabled_flag && !cu.transquant_bypass;
    int greater1_ctx = 1;  // greater1Ctx carried from the previous sub-block with greater1 flags (9.3.4.2.6)
    for (int i = last_sub_block; i >= 0; --i) {
      const int xs = sb_scan[static_cast<size_t>(i)].x;
      const int ys = sb_scan[static_cast<size_t>(i)].y;
      const int right = (coded_rows[ys] >> (xs + 1)) & 1;
      const int below = (coded_rows[ys + 1] >> xs) & 1;
      bool infer_sb_dc = false;
      int coded = 1;
      if (i < last_sub_block && i > 0) {
        // coded_sub_block_flag, ctxInc Min(csbfCtx, 1) (+2 for chroma) (9.3.4.2.4).
        coded = dec.decode_decision(csbf_models[right | below]);
        infer_sb_dc = true;
      }
      coded_rows[ys] = static_cast<uint16_t>(coded_rows[ys] | (coded << xs));
      uint32_t sig = 0;  // bit n: sig_coeff_flag at scan position n of the sub-block
      int start = 15;
      if (i == last_sub_block) {
        sig = 1u << last_scan_pos;
        start = last_scan_pos - 1;
      }
      if (coded && start >= 0) {
        // sig_coeff_flag ctxInc (9.3.4.2.5): from the tables; position 0 of sub-block 0 (xC + yC == 0) has sigCtx 0.
        const uint8_t* inc = scans_.sig_ctx_4x4[s].data();
        ContextModel* sub_models = sig_models;
        if (log2_size > 2) {
          inc = scans_.sig_ctx_pattern[s][static_cast<size_t>(right | (below << 1))].data();
          sub_models = sig_models + sig_offset + (!chroma && i > 0 ? 3 : 0);
        }
        for (int n = start; n > 0; --n) {
          if (dec.decode_decision(sub_models[inc[n]])) {
            sig |= 1u << n;
            infer_sb_dc = false;
          }
        }
        if (infer_sb_dc) {
          sig |= 1u;  // inferred 1: the only possible significant coefficient of a coded sub-block
        } else if (dec.decode_decision(i == 0 ? sig_models[0] : sub_models[inc[0]])) {
          sig |= 1u;
        }
      }
      if (sig == 0) continue;
      // coeff_abs_level_greater1_flag for the first eight significant coefficients: ctxSet (0 for sub-block 0 and
      // chroma, else 2; +1 when the previous sub-block's last greater1Ctx was 0) and greater1Ctx (9.3.4.2.6).
      int ctx_set = (i == 0 || chroma) ? 0 : 2;
      if (greater1_ctx == 0) ++ctx_set;
      greater1_ctx = 1;
      ContextModel* const g1 = g1_models + 4 * ctx_set;
      uint32_t greater1 = 0;
      int last_greater1_pos = -1;
      int flags = 0;
      for (uint32_t left = sig; left != 0 && flags < 8; ++flags) {
        const int n = highest_bit(left);
        left &= ~(1u << n);
        if (dec.decode_decision(g1[greater1_ctx])) {
          greater1 |= 1u << n;
          if (last_greater1_pos == -1) last_greater1_pos = n;
          greater1_ctx = 0;
        } else if (greater1_ctx > 0 && greater1_ctx < 3) {
          ++greater1_ctx;
        }
      }
      const int last_sig = highest_bit(sig);
      const int first_sig = __builtin_ctz(sig);
      int greater2 = 0;
      if (last_greater1_pos != -1) greater2 = dec.decode_decision(g2_models[ctx_set]);  // 9.3.4.2.7
      const int num_sig = bit_count16(sig);
      dec.decode_bypass_bits(num_sig - (sign_hiding && last_sig - first_sig > 3 ? 1 : 0));  // coeff_sign_flag
      // coeff_abs_level_remaining where baseLevel reaches its threshold: greater1 flag 1 (greater2 flag 1 for the
      // first such coefficient) among the first eight, every coefficient after them.
      int rice = 0;
      int counted = 0;
      for (uint32_t left = sig; left != 0; ++counted) {
        const int n = highest_bit(left);
        left &= ~(1u << n);
        const int g1_flag = (greater1 >> n) & 1;
        const int base_level = 1 + g1_flag + (n == last_greater1_pos ? greater2 : 0);
        const int threshold = counted < 8 ? (n == last_greater1_pos ? 3 : 2) : 1;
        if (base_level != threshold) continue;
        const uint32_t level = static_cast<uint32_t>(base_level) + coeff_abs_level_remaining(dec, rice);
        if (level > static_cast<uint32_t>(kMaxCoeffAbsLevel)) {
          fail(ErrorKind::InvalidValue, "coefficient level above the 16-bit range");
        }
        if (level > (3u << rice)) rice = std::min(rice + 1, 4);
      }
    }
  } catch (...) {
    dec_ = dec;
    throw;
  }
  dec_ = dec;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

PictureCodingState::PictureCodingState(const Sps& sps, int64_t index) { reset(sps, index); }

void PictureCodingState::reset(const Sps& sps, int64_t index) {
  if (sps.pic_width_in_luma_samples <= 0 || sps.pic_height_in_luma_samples <= 0 || sps.PicWidthInCtbsY <= 0 ||
      sps.PicHeightInCtbsY <= 0 || sps.CtbLog2SizeY < 4 || sps.CtbLog2SizeY > 6) {
    throw ParseError(ErrorKind::InvalidValue, "picture geometry without CTBs");
  }
  picture_index = index;
  pic_width = sps.pic_width_in_luma_samples;
  pic_height = sps.pic_height_in_luma_samples;
  ctb_log2_size = sps.CtbLog2SizeY;
  pic_width_in_ctbs = sps.PicWidthInCtbsY;
  pic_height_in_ctbs = sps.PicHeightInCtbsY;
  grid_width = pic_width_in_ctbs << (ctb_log2_size - 2);
  grid_height = pic_height_in_ctbs << (ctb_log2_size - 2);
  const size_t n = static_cast<size_t>(grid_width) * static_cast<size_t>(grid_height);
  ct_depth.assign(n, 0);
  cu_skip_flag.assign(n, 0);
  pred_mode.assign(n, PredMode::kNotCoded);
  part_mode.assign(n, kPart2Nx2N);
  log2_cb_size.assign(n, 0);
  intra_luma_mode.assign(n, kIntraDc);
  pu_index.assign(n, -1);
  ctb_slice_addr.assign(static_cast<size_t>(pic_width_in_ctbs) * static_cast<size_t>(pic_height_in_ctbs), -1);
  pus.clear();
  slices.clear();
  counts = CodingCounts{};
  wpp_contexts = ContextSet{};
  wpp_contexts_valid = false;
  dependent_contexts = ContextSet{};
  dependent_contexts_valid = false;
  last_slice_addr_rs = -1;
}

void PictureCodingState::outside_grid(int x, int y) {
  throw ParseError(ErrorKind::InvalidValue,
                   "luma position (" + std::to_string(x) + ", " + std::to_string(y) + ") outside the picture grid");
}

void parse_slice_segment_data(const Sps& sps, const Pps& pps, const CtbLayout& layout, const SliceHeader& header,
                              const uint8_t* rbsp, size_t rbsp_size, size_t data_offset,
                              const std::vector<size_t>& entry_points, PictureCodingState& picture) {
  Location start;
  start.picture = picture.picture_index;
  start.slice = static_cast<int64_t>(picture.slices.size());
  start.ctu = header.slice_segment_address;
  start.bit_position = static_cast<int64_t>(8 * static_cast<uint64_t>(data_offset));
  if (sps.ChromaArrayType > 1) {
    throw ParseError(ErrorKind::Unsupported, "slice data of ChromaArrayType " + std::to_string(sps.ChromaArrayType),
                     start);
  }
  const char* unsupported = nullptr;
  if (sps.transform_skip_context_enabled_flag) unsupported = "transform_skip_context_enabled_flag";
  if (sps.implicit_rdpcm_enabled_flag) unsupported = "implicit_rdpcm_enabled_flag";
  if (sps.explicit_rdpcm_enabled_flag) unsupported = "explicit_rdpcm_enabled_flag";
  if (sps.extended_precision_processing_flag) unsupported = "extended_precision_processing_flag";
  if (sps.persistent_rice_adaptation_enabled_flag) unsupported = "persistent_rice_adaptation_enabled_flag";
  if (sps.cabac_bypass_alignment_enabled_flag) unsupported = "cabac_bypass_alignment_enabled_flag";
  if (pps.cross_component_prediction_enabled_flag) unsupported = "cross_component_prediction_enabled_flag";
  if (unsupported != nullptr) {
    throw ParseError(ErrorKind::Unsupported, std::string("slice data with range extension tool ") + unsupported,
                     start);
  }
  SliceParser parser(sps, pps, layout, header, rbsp, rbsp_size, data_offset, entry_points, picture);
  try {
    parser.run();
  } catch (const ParseError& e) {
    throw e.located(parser.where());
  }
}

}  // namespace arseg::hevc
