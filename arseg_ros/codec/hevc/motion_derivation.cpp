// Luma motion vector derivation, ITU-T H.265 8.5.3.2 (see motion_derivation.hpp).
#include "motion_derivation.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "errors.hpp"

namespace arseg::hevc {

namespace {

constexpr int kMaxMergeCand = 5;

int64_t clip3(int64_t lo, int64_t hi, int64_t v) { return v < lo ? lo : (v > hi ? hi : v); }

// x >> n of the standard (5.7: arithmetic right shift of a two's complement value), also for negative x.
int64_t arith_shift_right(int64_t x, int n) { return x >= 0 ? (x >> n) : -((-x - 1) >> n) - 1; }

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

struct Mv {
  int16_t x = 0, y = 0;
  bool operator==(const Mv& o) const { return x == o.x && y == o.y; }
  bool operator!=(const Mv& o) const { return !(*this == o); }
};

Mv mv_of(const BlockMotion& b, int list) { return Mv{b.mv[list][0], b.mv[list][1]}; }

// 8-183 / 8-184 (8-196 / 8-197): tx and distScaleFactor for the clipped distances td (non-zero) and tb.
int64_t dist_scale_factor(int64_t td, int64_t tb) {
  const int64_t tx = (16384 + (abs64(td) >> 1)) / td;
  return clip3(-4096, 4095, arith_shift_right(tb * tx + 32, 6));
}

// 8-185 / 8-186 (8-198 .. 8-201): one component scaled by distScaleFactor, rounded and clipped.
int16_t scale_by(int32_t mv, int64_t factor) {
  const int64_t product = factor * mv;
  const int64_t sign = product < 0 ? -1 : (product > 0 ? 1 : 0);
  return static_cast<int16_t>(clip3(-32768, 32767, sign * ((abs64(product) + 127) >> 8)));
}

// Both components, with distScaleFactor computed once (scale_mv_component per component).
Mv scale_mv(const Mv& mv, int64_t td_raw, int64_t tb_raw) {
  const int64_t td = clip3(-128, 127, td_raw);
  if (td == 0) return mv;
  const int64_t factor = dist_scale_factor(td, clip3(-128, 127, tb_raw));
  return Mv{scale_by(mv.x, factor), scale_by(mv.y, factor)};
}

// "Same motion vectors and reference indices" of the merge pruning (8.5.3.2.3): the used lists, their vectors and
// reference indices (an unused list has refIdx -1; its vector plays no part).
bool same_motion(const BlockMotion& a, const BlockMotion& b) {
  if (a.pred_flags != b.pred_flags) return false;
  for (int list = 0; list < 2; ++list) {
    if (!a.pred_flag(list)) continue;
    if (a.ref_idx[list] != b.ref_idx[list] || a.mv[list][0] != b.mv[list][0] || a.mv[list][1] != b.mv[list][1]) {
      return false;
    }
  }
  return true;
}

// Coding block and prediction block of a PU (8.5.3.2.1 inputs).
struct PbGeometry {
  int x_cb = 0, y_cb = 0, n_cb_s = 8;
  int x_pb = 0, y_pb = 0, n_pb_w = 0, n_pb_h = 0;
  int part_idx = 0;
  int part_mode = kPart2Nx2N;
};

// The derivation for the PUs of one slice segment.
class SliceDeriver {
 public:
  SliceDeriver(const Pps& pps, const CtbLayout& layout, const SliceHeader& header, const std::vector<RefEntry>& l0,
               const std::vector<RefEntry>& l1, const PictureCodingState& coding, MotionField& field)
      : pps_(pps), layout_(layout), header_(header), coding_(coding), field_(field) {
    refs_ = &field_.slices.back();
    for (int x = 0; x < 2; ++x) {
      list_[x] = refs_->list[x].data();
      list_size_[x] = refs_->list[x].size();
    }
    slice_ = static_cast<int32_t>(field_.slices.size()) - 1;
    poc_ = field_.poc;
    pic_width_ = field_.pic_width;
    pic_height_ = field_.pic_height;
    grid_width_ = static_cast<size_t>(coding_.grid_width);
    ctb_log2_ = layout_.CtbLog2SizeY;
    pic_width_in_ctbs_ = static_cast<size_t>(layout_.PicWidthInCtbsY);
    pu_index_ = coding_.pu_index.data();
    pu_index_size_ = coding_.pu_index.size();
    pus_ = field_.pus.data();
    is_b_ = header_.is_b();
    slice_addr_rs_ = static_cast<int32_t>(coding_.slices.back().slice_addr_rs);
    // NoBackwardPredFlag (8.5.3.2.9): no picture of RefPicList0 / RefPicList1 follows the current one in POC order.
    for (const auto& list : refs_->list) {
      for (const RefPicInfo& r : list) {
        if (r.poc > field_.poc) no_backward_pred_ = false;
      }
    }
    // colPic (8.5.3.2.8): RefPicList1[collocated_ref_idx] for a B slice with collocated_from_l0_flag 0, else
    // RefPicList0[collocated_ref_idx]. No motion field (generated placeholder, other geometry): no temporal candidate.
    if (!header_.slice_temporal_mvp_enabled_flag || header_.is_intra()) return;
    const std::vector<RefEntry>& entries = (is_b_ && !header_.collocated_from_l0_flag) ? l1 : l0;
    if (header_.collocated_ref_idx < 0 || static_cast<size_t>(header_.collocated_ref_idx) >= entries.size()) {
      fail("collocated_ref_idx " + std::to_string(header_.collocated_ref_idx) + " outside the reference list");
    }
    const MotionField* col = motion_field_of(entries[static_cast<size_t>(header_.collocated_ref_idx)].picture.get());
    if (col != nullptr && col != &field_ && col->pic_width == field_.pic_width &&
        col->pic_height == field_.pic_height && col->grid_width == field_.grid_width &&
        col->grid_height == field_.grid_height) {
      col_ = col;
    }
  }

  // 8.5.3.2.1: the motion of one PU, appended to field.pus. The fields are written in place: the neighbours and the
  // temporal storage read them later, as whole blocks.
  void derive(const PredictionUnit& pu) {
    const PbGeometry g = geometry(pu);
    current_ = static_cast<int32_t>(field_.pus.size());
    BlockMotion& m = field_.pus.emplace_back();  // capacity reserved by derive_slice_motion: neighbours stay valid
    if (pu.merge_flag) {
      merge(g, pu, m);
    } else {
      const bool use[2] = {pu.inter_pred_idc == kPredL0 || pu.inter_pred_idc == kPredBi,
                           pu.inter_pred_idc == kPredL1 || pu.inter_pred_idc == kPredBi};
      if (pu.inter_pred_idc > kPredBi || (use[1] && !is_b_)) fail("inter_pred_idc outside the slice type");
      uint8_t pred_flags = 0;
      for (int x = 0; x < 2; ++x) {
        if (!use[x]) continue;
        const int ref_idx = pu.ref_idx[x];
        check_ref_idx(x, ref_idx);
        const Mv mvp = luma_mvp(g, x, ref_idx, pu.mvp_flag[x]);
        pred_flags = static_cast<uint8_t>(pred_flags | (1 << x));
        m.ref_idx[x] = static_cast<int8_t>(ref_idx);
        m.mv[x][0] = add_mvd_wrapped(mvp.x, pu.mvd[x][0]);
        m.mv[x][1] = add_mvd_wrapped(mvp.y, pu.mvd[x][1]);
      }
      m.pred_flags = pred_flags;
    }
    m.slice = slice_;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    Location where;
    where.picture = coding_.picture_index;
    where.slice = static_cast<int64_t>(coding_.slices.size()) - 1;
    throw ParseError(ErrorKind::InvalidValue, "motion derivation: " + message, where);
  }

  // RefPicListX[ref_idx] of the slice, or null outside the list.
  const RefPicInfo* current_ref(int list, int ref_idx) const {
    return (ref_idx >= 0 && static_cast<size_t>(ref_idx) < list_size_[list]) ? &list_[list][ref_idx] : nullptr;
  }

  // The reference picture of list `list` of a block of this picture (MotionField::ref), without the look-up of the
  // slice segment when it is the current one.
  const RefPicInfo* block_ref(const BlockMotion& b, int list) const {
    if (b.slice != slice_) return field_.ref(b, list);
    return b.pred_flag(list) ? current_ref(list, b.ref_idx[list]) : nullptr;
  }

  void check_ref_idx(int list, int ref_idx) const {
    if (ref_idx < 0 || static_cast<size_t>(ref_idx) >= list_size_[list]) {
      fail("ref_idx_l" + std::to_string(list) + " " + std::to_string(ref_idx) + " outside RefPicList" +
           std::to_string(list));
    }
  }

  PbGeometry geometry(const PredictionUnit& pu) {
    if (pu.w <= 0 || pu.h <= 0 || pu.x < 0 || pu.y < 0 || pu.x + pu.w > 4 * field_.grid_width ||
        pu.y + pu.h > 4 * field_.grid_height) {
      fail("prediction unit outside the picture");
    }
    PbGeometry out;
    const int log2_cb = pu.log2_cb_size;
    if (log2_cb < 3 || log2_cb > 6) fail("coding block size of a prediction unit");
    out.n_cb_s = 1 << log2_cb;
    out.x_cb = (pu.x >> log2_cb) << log2_cb;
    out.y_cb = (pu.y >> log2_cb) << log2_cb;
    out.x_pb = pu.x;
    out.y_pb = pu.y;
    out.n_pb_w = pu.w;
    out.n_pb_h = pu.h;
    out.part_idx = pu.part_idx;
    out.part_mode = pu.part_mode;
    // The CTB of the PU; its TileId is looked up when the PU moves to another CTB.
    const int ctb_x = pu.x >> ctb_log2_, ctb_y = pu.y >> ctb_log2_;
    if (ctb_x != ctb_x_ || ctb_y != ctb_y_) {
      ctb_x_ = ctb_x;
      ctb_y_ = ctb_y;
      tile_ = tile_of(static_cast<size_t>(ctb_y) * pic_width_in_ctbs_ + static_cast<size_t>(ctb_x));
      if (tile_ < 0) fail("prediction unit outside the tile map");
    }
    return out;
  }

  // TileId of the CTB at raster address `ctb`, -1 outside the layout.
  int tile_of(size_t ctb) const {
    if (ctb >= layout_.CtbAddrRsToTs.size()) return -1;
    const auto ts = static_cast<size_t>(layout_.CtbAddrRsToTs[ctb]);
    return ts < layout_.TileId.size() ? layout_.TileId[ts] : -1;
  }

  // 6.4.2 with 6.4.1: prediction block availability of (x_nb, y_nb) for the current PU; the neighbour's motion, or
  // null when unavailable or not inter predicted. The PUs of the picture are indexed in decode order, so a
  // neighbour covered by a PU with a lower index than the current one is exactly one that precedes it in z-scan
  // order (MinTbAddrZs, a different CU), or the earlier PU of the same CU (which also leaves out the third PU of an
  // NxN CU for the second one); what remains of 6.4.1 is the slice and the tile, which only a neighbour in another
  // CTB can differ in. An intra neighbour (no PU) is unavailable.
  const BlockMotion* neighbour(int x_nb, int y_nb) const {
    if (x_nb < 0 || y_nb < 0 || x_nb >= pic_width_ || y_nb >= pic_height_) return nullptr;
    const size_t g = static_cast<size_t>(y_nb >> 2) * grid_width_ + static_cast<size_t>(x_nb >> 2);
    if (g >= pu_index_size_) return nullptr;
    const int32_t index = pu_index_[g];
    if (index < 0 || index >= current_) return nullptr;
    const int c = ctb_log2_;
    if ((x_nb >> c) != ctb_x_ || (y_nb >> c) != ctb_y_) {
      const size_t ctb = static_cast<size_t>(y_nb >> c) * pic_width_in_ctbs_ + static_cast<size_t>(x_nb >> c);
      if (ctb >= coding_.ctb_slice_addr.size() || coding_.ctb_slice_addr[ctb] != slice_addr_rs_) return nullptr;
      if (tile_of(ctb) != tile_) return nullptr;
    }
    return pus_ + index;
  }

  // 8.5.3.2.2: merge mode; the candidate merge_idx, written to `out` (all fields but the slice).
  void merge(const PbGeometry& orig, const PredictionUnit& pu, BlockMotion& out) const {
    if (pu.merge_idx >= header_.MaxNumMergeCand || header_.MaxNumMergeCand > kMaxMergeCand) {
      fail("merge_idx " + std::to_string(pu.merge_idx) + " not below MaxNumMergeCand");
    }
    PbGeometry g = orig;
    // singleMCLFlag: Log2ParMrgLevel > 2 and an 8x8 CU: all its PUs share the 2Nx2N candidate list.
    if (pps_.Log2ParMrgLevel > 2 && g.n_cb_s == 8) {
      g.x_pb = g.x_cb;
      g.y_pb = g.y_cb;
      g.n_pb_w = g.n_cb_s;
      g.n_pb_h = g.n_cb_s;
      g.part_idx = 0;
    }
    const int merge_idx = pu.merge_idx;
    const BlockMotion* cand[kMaxMergeCand];
    int n = spatial_merge_candidates(g, cand, merge_idx + 1);
    BlockMotion col;
    if (merge_idx >= n) {
      // Temporal candidate with refIdxLXCol = 0 (8.5.3.2.2 step 2, 8.5.3.2.8).
      Mv mv;
      if (temporal_mv(g, 0, 0, mv)) {
        col.pred_flags = 1;
        col.ref_idx[0] = 0;
        col.mv[0][0] = mv.x;
        col.mv[0][1] = mv.y;
      }
      if (is_b_ && temporal_mv(g, 1, 0, mv)) {
        col.pred_flags = static_cast<uint8_t>(col.pred_flags | 2);
        col.ref_idx[1] = 0;
        col.mv[1][0] = mv.x;
        col.mv[1][1] = mv.y;
      }
      if (col.pred_flags != 0 && n < kMaxMergeCand) cand[n++] = &col;
    }
    if (merge_idx < n) {
      copy_motion(*cand[merge_idx], out);
    } else if (!(is_b_ && combined_bi_pred_candidate(cand, n, merge_idx, out))) {
      zero_candidate(merge_idx - n, out);
    }
    // 8.5.3.2.2 (end): no bi-prediction for 8x4 / 4x8 PUs (nOrigPbW + nOrigPbH == 12).
    if (out.pred_flags == 3 && orig.n_pb_w + orig.n_pb_h == 12) {
      out.pred_flags = 1;
      out.ref_idx[1] = -1;
      out.mv[1][0] = 0;
      out.mv[1][1] = 0;
    }
  }

  // A merge candidate's motion (all fields but the slice), field by field.
  static void copy_motion(const BlockMotion& from, BlockMotion& out) {
    out.pred_flags = from.pred_flags;
    for (int list = 0; list < 2; ++list) {
      out.ref_idx[list] = from.ref_idx[list];
      out.mv[list][0] = from.mv[list][0];
      out.mv[list][1] = from.mv[list][1];
    }
  }

  // 8.5.3.2.3: spatial merge candidates A1, B1, B0, A0, B2 (in list order), with the parallel merge level, the
  // second-PU exclusions and the listed pruning comparisons. Returns their number, stopping once there are `wanted`
  // (the later candidates cannot change the first ones).
  int spatial_merge_candidates(const PbGeometry& g, const BlockMotion** cand, int wanted) const {
    const int lvl = pps_.Log2ParMrgLevel;
    const auto same_merge_region = [&](int x_nb, int y_nb) {
      return (g.x_pb >> lvl) == (x_nb >> lvl) && (g.y_pb >> lvl) == (y_nb >> lvl);
    };
    const auto candidate = [&](int x_nb, int y_nb) -> const BlockMotion* {
      return same_merge_region(x_nb, y_nb) ? nullptr : neighbour(x_nb, y_nb);
    };
    int n = 0;
    const int pm = g.part_mode;
    // A1
    const int x_a1 = g.x_pb - 1, y_a1 = g.y_pb + g.n_pb_h - 1;
    const bool second_vertical = g.part_idx == 1 && (pm == kPartNx2N || pm == kPartnLx2N || pm == kPartnRx2N);
    const BlockMotion* a1 = second_vertical ? nullptr : candidate(x_a1, y_a1);
    if (a1 != nullptr) cand[n++] = a1;
    if (n == wanted) return n;
    // B1
    const int x_b1 = g.x_pb + g.n_pb_w - 1, y_b1 = g.y_pb - 1;
    const bool second_horizontal = g.part_idx == 1 && (pm == kPart2NxN || pm == kPart2NxnU || pm == kPart2NxnD);
    const BlockMotion* b1 = second_horizontal ? nullptr : candidate(x_b1, y_b1);
    if (b1 != nullptr && !(a1 != nullptr && same_motion(*a1, *b1))) cand[n++] = b1;
    if (n == wanted) return n;
    // B0
    const BlockMotion* b0 = candidate(g.x_pb + g.n_pb_w, g.y_pb - 1);
    if (b0 != nullptr && !(b1 != nullptr && same_motion(*b1, *b0))) cand[n++] = b0;
    if (n == wanted) return n;
    // A0
    const BlockMotion* a0 = candidate(g.x_pb - 1, g.y_pb + g.n_pb_h);
    if (a0 != nullptr && !(a1 != nullptr && same_motion(*a1, *a0))) cand[n++] = a0;
    if (n == wanted) return n;
    // B2: only when fewer than four of A0, A1, B0, B1 are candidates.
    if (n < 4) {
      const BlockMotion* b2 = candidate(g.x_pb - 1, g.y_pb - 1);
      if (b2 != nullptr && !(a1 != nullptr && same_motion(*a1, *b2)) && !(b1 != nullptr && same_motion(*b1, *b2))) {
        cand[n++] = b2;
      }
    }
    return n;
  }

  // 8.5.3.2.4: combined bi-predictive merge candidates (B slices), appended after the numOrigMergeCand = `n`
  // candidates of `cand`. Each combines two original candidates only, so the one at list position merge_idx is
  // written to `out` without building the others; false when the combined candidates end before merge_idx.
  bool combined_bi_pred_candidate(const BlockMotion* const* cand, int& n, int merge_idx, BlockMotion& out) const {
    static constexpr int kL0CandIdx[12] = {0, 1, 0, 2, 1, 2, 0, 3, 1, 3, 2, 3};
    static constexpr int kL1CandIdx[12] = {1, 0, 2, 0, 2, 1, 3, 0, 3, 1, 3, 2};
    const int num_orig = n;
    const int max_cand = header_.MaxNumMergeCand;
    if (num_orig <= 1 || num_orig >= max_cand) return false;
    for (int comb_idx = 0; comb_idx < 12; ++comb_idx) {
      const BlockMotion& l0 = *cand[kL0CandIdx[comb_idx]];
      const BlockMotion& l1 = *cand[kL1CandIdx[comb_idx]];
      const RefPicInfo* r0 = l0.pred_flag(0) ? current_ref(0, l0.ref_idx[0]) : nullptr;
      const RefPicInfo* r1 = l1.pred_flag(1) ? current_ref(1, l1.ref_idx[1]) : nullptr;
      // Both lists used, and DiffPicOrderCnt(RefPicList0[refIdxL0l0Cand], RefPicList1[refIdxL1l1Cand]) != 0 or
      // different vectors.
      if (r0 != nullptr && r1 != nullptr && (r0->poc != r1->poc || mv_of(l0, 0) != mv_of(l1, 1))) {
        if (n == merge_idx) {
          out.pred_flags = 3;
          out.ref_idx[0] = l0.ref_idx[0];
          out.ref_idx[1] = l1.ref_idx[1];
          out.mv[0][0] = l0.mv[0][0];
          out.mv[0][1] = l0.mv[0][1];
          out.mv[1][0] = l1.mv[1][0];
          out.mv[1][1] = l1.mv[1][1];
          return true;
        }
        ++n;
      }
      if (comb_idx + 1 == num_orig * (num_orig - 1) || n == max_cand) break;
    }
    return false;
  }

  // 8.5.3.2.5: the zero motion vector merge candidate zeroIdx = `zero_idx` (the list position merge_idx minus the
  // candidates before the zero ones), written to `out`.
  void zero_candidate(int zero_idx, BlockMotion& out) const {
    const int num_ref_idx = is_b_
                                ? std::min(header_.num_ref_idx_active(0), header_.num_ref_idx_active(1))
                                : header_.num_ref_idx_active(0);
    const int ref_idx = zero_idx < num_ref_idx ? zero_idx : 0;
    out.pred_flags = is_b_ ? 3 : 1;
    out.ref_idx[0] = static_cast<int8_t>(ref_idx);
    out.ref_idx[1] = is_b_ ? static_cast<int8_t>(ref_idx) : int8_t{-1};
    out.mv[0][0] = 0;
    out.mv[0][1] = 0;
    out.mv[1][0] = 0;
    out.mv[1][1] = 0;
  }

  // 8.5.3.2.6: luma motion vector predictor mvpLX for refIdxLX and mvp_lX_flag.
  Mv luma_mvp(const PbGeometry& g, int x, int ref_idx, int mvp_flag) const {
    Mv mv_a, mv_b;
    bool avail_a = false, avail_b = false;
    spatial_mvp_candidates(g, x, ref_idx, mv_a, avail_a, mv_b, avail_b);
    Mv list[2];
    int i = 0;
    if (avail_a) list[i++] = mv_a;
    if (avail_b && !(avail_a && mv_a == mv_b)) list[i++] = mv_b;
    if (i < 2) {
      // Temporal candidate only when the spatial ones do not give two distinct predictors.
      Mv mv_col;
      if (temporal_mv(g, x, ref_idx, mv_col)) list[i++] = mv_col;
    }
    while (i < 2) list[i++] = Mv{};
    return list[mvp_flag != 0 ? 1 : 0];
  }

  // 8.5.3.2.7: spatial motion vector predictor candidates A (A0, A1) and B (B0, B1, B2).
  void spatial_mvp_candidates(const PbGeometry& g, int x, int ref_idx, Mv& mv_a, bool& avail_a, Mv& mv_b,
                              bool& avail_b) const {
    const int y = 1 - x;
    const RefPicInfo& target = refs_->list[x][static_cast<size_t>(ref_idx)];
    const int64_t tb = poc_ - target.poc;
    const BlockMotion* a[2] = {neighbour(g.x_pb - 1, g.y_pb + g.n_pb_h), neighbour(g.x_pb - 1, g.y_pb + g.n_pb_h - 1)};
    const bool is_scaled = a[0] != nullptr || a[1] != nullptr;
    // A without scaling: a neighbour list that refers to the same picture (LX first, then LY).
    avail_a = find_same_picture(a, 2, x, y, target, mv_a);
    if (!avail_a) avail_a = find_scaled(a, 2, x, y, target, tb, mv_a);
    const BlockMotion* b[3] = {neighbour(g.x_pb + g.n_pb_w, g.y_pb - 1),
                               neighbour(g.x_pb + g.n_pb_w - 1, g.y_pb - 1), neighbour(g.x_pb - 1, g.y_pb - 1)};
    avail_b = find_same_picture(b, 3, x, y, target, mv_b);
    if (!is_scaled) {
      // No A neighbour: the unscaled B becomes A, and B is searched again with scaling.
      if (avail_b) {
        avail_a = true;
        mv_a = mv_b;
      }
      avail_b = find_scaled(b, 3, x, y, target, tb, mv_b);
    }
  }

  // 8.5.3.2.7 steps for A (6) and B (3): the first neighbour whose LX, else LY, refers to the target picture.
  bool find_same_picture(const BlockMotion* const* nbs, int count, int x, int y, const RefPicInfo& target,
                         Mv& mv) const {
    for (int k = 0; k < count; ++k) {
      const BlockMotion* nb = nbs[k];
      if (nb == nullptr) continue;
      for (const int list : {x, y}) {
        const RefPicInfo* r = block_ref(*nb, list);
        if (r != nullptr && r->poc == target.poc) {
          mv = mv_of(*nb, list);
          return true;
        }
      }
    }
    return false;
  }

  // 8.5.3.2.7 steps for A (7) and B (5): the first neighbour whose LX, else LY, reference has the target's long-term
  // marking, its vector scaled by the POC distances when both are short-term.
  bool find_scaled(const BlockMotion* const* nbs, int count, int x, int y, const RefPicInfo& target, int64_t tb,
                   Mv& mv) const {
    for (int k = 0; k < count; ++k) {
      const BlockMotion* nb = nbs[k];
      if (nb == nullptr) continue;
      for (const int list : {x, y}) {
        const RefPicInfo* r = block_ref(*nb, list);
        if (r == nullptr || r->long_term != target.long_term) continue;
        mv = mv_of(*nb, list);
        if (!r->long_term && !target.long_term) mv = scale_mv(mv, poc_ - r->poc, tb);
        return true;
      }
    }
    return false;
  }

  // 8.5.3.2.8: temporal luma motion vector prediction for refIdxLX in list X; false when unavailable.
  bool temporal_mv(const PbGeometry& g, int x, int ref_idx, Mv& mv) const {
    if (col_ == nullptr) return false;
    // Bottom-right candidate, within the CTB row of the coding block and inside the picture, on the 16x16 grid.
    const int x_br = g.x_pb + g.n_pb_w, y_br = g.y_pb + g.n_pb_h;
    const int c = ctb_log2_;
    if ((g.y_cb >> c) == (y_br >> c) && y_br < pic_height_ && x_br < pic_width_) {
      if (collocated_mv(((x_br >> 4) << 4), ((y_br >> 4) << 4), x, ref_idx, mv)) return true;
    }
    // Centre candidate.
    const int x_ctr = g.x_pb + (g.n_pb_w >> 1), y_ctr = g.y_pb + (g.n_pb_h >> 1);
    return collocated_mv(((x_ctr >> 4) << 4), ((y_ctr >> 4) << 4), x, ref_idx, mv);
  }

  // 8.5.3.2.9: collocated motion vector of the colPb covering (x_col, y_col) in colPic.
  bool collocated_mv(int x_col, int y_col, int x, int ref_idx, Mv& mv) const {
    const BlockMotion* col_pb = col_->collocated_at(x_col, y_col);
    if (col_pb == nullptr || col_pb->pred_flags == 0) return false;  // intra (or not coded) colPb
    int list_col;
    if (!col_pb->pred_flag(0)) {
      list_col = 1;
    } else if (!col_pb->pred_flag(1)) {
      list_col = 0;
    } else {
      list_col = no_backward_pred_ ? x : (header_.collocated_from_l0_flag ? 1 : 0);
    }
    const RefPicInfo* ref_col = col_->ref(*col_pb, list_col);
    if (ref_col == nullptr) return false;
    const RefPicInfo* target_ref = current_ref(x, ref_idx);
    if (target_ref == nullptr) return false;
    const RefPicInfo& target = *target_ref;
    if (target.long_term != ref_col->long_term) return false;
    const Mv mv_col = mv_of(*col_pb, list_col);
    const int64_t col_poc_diff = col_->poc - ref_col->poc;
    const int64_t curr_poc_diff = poc_ - target.poc;
    mv = (target.long_term || col_poc_diff == curr_poc_diff) ? mv_col : scale_mv(mv_col, col_poc_diff, curr_poc_diff);
    return true;
  }

  const Pps& pps_;
  const CtbLayout& layout_;
  const SliceHeader& header_;
  const PictureCodingState& coding_;
  MotionField& field_;
  const SliceRefLists* refs_ = nullptr;
  const MotionField* col_ = nullptr;
  int32_t slice_ = 0;          // index of the slice segment in field.slices
  // Copies of what every PU reads: its reference lists, the picture geometry, the PU map and the derived PUs
  // (field.pus, whose capacity derive_slice_motion reserved for every PU of the slice segment).
  const RefPicInfo* list_[2] = {nullptr, nullptr};
  size_t list_size_[2] = {0, 0};
  int64_t poc_ = 0;
  int pic_width_ = 0, pic_height_ = 0;
  size_t grid_width_ = 0;
  int ctb_log2_ = 4;
  size_t pic_width_in_ctbs_ = 0;
  const int32_t* pu_index_ = nullptr;
  size_t pu_index_size_ = 0;
  const BlockMotion* pus_ = nullptr;
  bool is_b_ = false;
  int32_t slice_addr_rs_ = 0;
  bool no_backward_pred_ = true;
  // The PU being derived: its index in field.pus, its CTB and that CTB's TileId.
  int32_t current_ = 0;
  int ctb_x_ = -1, ctb_y_ = -1, tile_ = -1;
};

}  // namespace

// 8.5.3.2.1 (8-192 .. 8-195): mvLX = mvpLX + mvdLX with the 16-bit wrap-around.
int16_t add_mvd_wrapped(int32_t mvp, int32_t mvd) {
  const int64_t u = ((static_cast<int64_t>(mvp) + mvd + 65536) % 65536 + 65536) % 65536;  // any input: 0..65535
  return static_cast<int16_t>(u >= 32768 ? u - 65536 : u);
}

// 8.5.3.2.7 (8-183 .. 8-186), 8.5.3.2.9 (8-196 .. 8-201): tx, distScaleFactor and the rounded, clipped product.
int16_t scale_mv_component(int32_t mv, int64_t td_raw, int64_t tb_raw) {
  const int64_t td = clip3(-128, 127, td_raw);
  if (td == 0) return static_cast<int16_t>(mv);
  return scale_by(mv, dist_scale_factor(td, clip3(-128, 127, tb_raw)));
}

MotionField::MotionField(const PictureCodingState& coding, int64_t poc_value, int64_t dpb_id_value)
    : picture_index(coding.picture_index),
      poc(poc_value),
      dpb_id(dpb_id_value),
      pic_width(coding.pic_width),
      pic_height(coding.pic_height),
      grid_width(coding.grid_width),
      grid_height(coding.grid_height),
      col_width((coding.grid_width + 3) >> 2),
      col_height((coding.grid_height + 3) >> 2),
      collocated(static_cast<size_t>(col_width) * static_cast<size_t>(col_height), -1) {}

std::shared_ptr<MotionField> start_motion_field(const PictureCodingState& coding, const DpbPicturePtr& picture) {
  auto field = std::make_shared<MotionField>(coding, picture ? picture->poc : 0, picture ? picture->id : -1);
  if (picture) picture->motion_field = field;
  return field;
}

const MotionField* motion_field_of(const DpbPicture* picture) {
  if (picture == nullptr || picture->missing || !picture->motion_field) return nullptr;
  return static_cast<const MotionField*>(picture->motion_field.get());
}

DenseMotion dense_motion(const MotionField& field, const PictureCodingState& coding) {
  DenseMotion d;
  d.decode_index = field.picture_index;
  d.poc = field.poc;
  d.width = field.pic_width;
  d.height = field.pic_height;
  d.blocks_w = (field.pic_width + 3) / 4;
  d.blocks_h = (field.pic_height + 3) / 4;
  const size_t plane = static_cast<size_t>(d.blocks_w) * static_cast<size_t>(d.blocks_h);
  if (d.blocks_w > coding.grid_width || d.blocks_h > coding.grid_height ||
      coding.pu_index.size() < static_cast<size_t>(coding.grid_width) * static_cast<size_t>(coding.grid_height)) {
    throw ParseError(ErrorKind::InvalidValue, "motion export: coding state of another picture geometry");
  }
  // What every element of a 4x4 block holds, resolved once per derived PU (record index + 1) rather than per block;
  // record 0 is a block without a derived PU: both lists unused.
  struct BlockExport {
    int32_t ref_poc[2] = {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::min()};
    int16_t mv[2][2] = {{0, 0}, {0, 0}};
    int8_t ref_idx[2] = {-1, -1};
    uint8_t pred_flag[2] = {0, 0};
    uint8_t long_term[2] = {0, 0};
  };
  std::vector<BlockExport> records(field.pus.size() + 1);
  for (size_t i = 0; i < field.pus.size(); ++i) {
    BlockExport& e = records[i + 1];
    for (int list = 0; list < 2; ++list) {
      const RefPicInfo* ref = field.ref(field.pus[i], list);
      if (ref == nullptr) continue;
      e.ref_poc[list] = static_cast<int32_t>(ref->poc);
      e.mv[list][0] = field.pus[i].mv[list][0];
      e.mv[list][1] = field.pus[i].mv[list][1];
      e.ref_idx[list] = field.pus[i].ref_idx[list];
      e.pred_flag[list] = 1;
      e.long_term[list] = static_cast<uint8_t>(ref->long_term);
    }
  }
  // Every element is written once below, block by block from the record of its PU.
  d.pred_flag.resize(2 * plane);
  d.mv.resize(4 * plane);
  d.ref_idx.resize(2 * plane);
  d.ref_poc.resize(2 * plane);
  d.ref_long_term.resize(2 * plane);
  const auto blocks_w = static_cast<size_t>(d.blocks_w);
  const size_t derived = field.pus.size();
  uint8_t* const pred_flag = d.pred_flag.data();
  int16_t* const mv = d.mv.data();
  int8_t* const ref_idx = d.ref_idx.data();
  int32_t* const ref_poc = d.ref_poc.data();
  uint8_t* const long_term = d.ref_long_term.data();
  for (int by = 0; by < d.blocks_h; ++by) {
    const int32_t* pu_row = coding.pu_index.data() + static_cast<size_t>(by) * static_cast<size_t>(coding.grid_width);
    const size_t row = static_cast<size_t>(by) * blocks_w;
    for (size_t bx = 0; bx < blocks_w; ++bx) {
      const int32_t index = pu_row[bx];
      const bool has_pu = index >= 0 && static_cast<size_t>(index) < derived;
      const BlockExport& e = records[has_pu ? static_cast<size_t>(index) + 1 : 0];
      const size_t at0 = row + bx;
      const size_t at1 = plane + at0;
      pred_flag[at0] = e.pred_flag[0];
      pred_flag[at1] = e.pred_flag[1];
      ref_idx[at0] = e.ref_idx[0];
      ref_idx[at1] = e.ref_idx[1];
      ref_poc[at0] = e.ref_poc[0];
      ref_poc[at1] = e.ref_poc[1];
      long_term[at0] = e.long_term[0];
      long_term[at1] = e.long_term[1];
      mv[2 * at0] = e.mv[0][0];
      mv[2 * at0 + 1] = e.mv[0][1];
      mv[2 * at1] = e.mv[1][0];
      mv[2 * at1 + 1] = e.mv[1][1];
    }
  }
  return d;
}

void derive_slice_motion(const Sps& sps, const Pps& pps, const CtbLayout& layout, const SliceHeader& header,
                         const std::vector<RefEntry>& ref_list0, const std::vector<RefEntry>& ref_list1,
                         const PictureCodingState& coding, MotionField& field) {
  Location where;
  where.picture = coding.picture_index;
  if (coding.grid_width != field.grid_width || coding.grid_height != field.grid_height ||
      coding.pic_width != field.pic_width || coding.pic_height != field.pic_height ||
      sps.pic_width_in_luma_samples != field.pic_width || layout.CtbLog2SizeY != coding.ctb_log2_size) {
    throw ParseError(ErrorKind::InvalidValue, "motion derivation: motion field of another picture geometry", where);
  }
  if (coding.slices.empty()) return;
  const SliceSegmentInfo& slice = coding.slices.back();
  if (field.pus.size() < slice.first_pu && field.pus.size() < coding.pus.size()) {
    throw ParseError(ErrorKind::InvalidValue, "motion derivation: PUs of an earlier slice segment not derived", where);
  }
  SliceRefLists lists;
  const std::vector<RefEntry>* in[2] = {&ref_list0, &ref_list1};
  for (int x = 0; x < 2; ++x) {
    const size_t active = static_cast<size_t>(header.num_ref_idx_active(x));
    if (in[x]->size() < active) {
      throw ParseError(ErrorKind::InvalidValue,
                       "motion derivation: RefPicList" + std::to_string(x) + " shorter than num_ref_idx_l" +
                           std::to_string(x) + "_active_minus1 + 1",
                       where);
    }
    lists.list[x].reserve(active);
    for (size_t i = 0; i < active; ++i) {
      const RefEntry& e = (*in[x])[i];
      lists.list[x].push_back(RefPicInfo{e.poc, e.long_term, e.dpb_id});
    }
  }
  field.slices.push_back(std::move(lists));
  if (field.pus.capacity() < coding.pus.size()) field.pus.reserve(std::max(coding.pus.size(), 2 * field.pus.capacity()));
  SliceDeriver deriver(pps, layout, header, ref_list0, ref_list1, coding, field);
  for (size_t i = field.pus.size(); i < coding.pus.size(); ++i) deriver.derive(coding.pus[i]);
  // Temporal motion storage: the PU covering the top-left 4x4 block of each 16x16 block, for the PUs derived so far
  // (the PUs of later slice segments are not in pu_index yet).
  // The 16x16 grid covers the 4x4 grid (both from the same geometry, checked above): 4 * (rows - 1) < grid_height
  // and 4 * (cols - 1) < grid_width.
  const size_t cols = static_cast<size_t>(field.col_width), rows = static_cast<size_t>(field.col_height);
  const size_t grid_width = static_cast<size_t>(coding.grid_width);
  if (field.collocated.size() < rows * cols ||
      coding.pu_index.size() < grid_width * static_cast<size_t>(coding.grid_height)) {
    throw ParseError(ErrorKind::InvalidValue, "motion derivation: temporal storage of another geometry", where);
  }
  for (size_t y = 0; y < rows; ++y) {
    const int32_t* pu_row = coding.pu_index.data() + 4 * y * grid_width;
    int32_t* col_row = field.collocated.data() + y * cols;
    for (size_t x = 0; x < cols; ++x) col_row[x] = pu_row[4 * x];
  }
}

}  // namespace arseg::hevc
