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

Mv scale_mv(const Mv& mv, int64_t td, int64_t tb) {
  return Mv{scale_mv_component(mv.x, td, tb), scale_mv_component(mv.y, td, tb)};
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
    const std::vector<RefEntry>& entries = (header_.is_b() && !header_.collocated_from_l0_flag) ? l1 : l0;
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

  // 8.5.3.2.1: the motion of one PU, appended to field.pus.
  void derive(const PredictionUnit& pu) {
    const PbGeometry g = geometry(pu);
    BlockMotion m;
    if (pu.merge_flag) {
      m = merge(g, pu);
    } else {
      const bool use[2] = {pu.inter_pred_idc == kPredL0 || pu.inter_pred_idc == kPredBi,
                           pu.inter_pred_idc == kPredL1 || pu.inter_pred_idc == kPredBi};
      if (pu.inter_pred_idc > kPredBi || (use[1] && !header_.is_b())) fail("inter_pred_idc outside the slice type");
      for (int x = 0; x < 2; ++x) {
        if (!use[x]) continue;
        const int ref_idx = pu.ref_idx[x];
        check_ref_idx(x, ref_idx);
        const Mv mvp = luma_mvp(g, x, ref_idx, pu.mvp_flag[x]);
        m.pred_flags = static_cast<uint8_t>(m.pred_flags | (1 << x));
        m.ref_idx[x] = static_cast<int8_t>(ref_idx);
        m.mv[x][0] = add_mvd_wrapped(mvp.x, pu.mvd[x][0]);
        m.mv[x][1] = add_mvd_wrapped(mvp.y, pu.mvd[x][1]);
      }
    }
    store(pu, m);
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
    const std::vector<RefPicInfo>& entries = refs_->list[list];
    return (ref_idx >= 0 && static_cast<size_t>(ref_idx) < entries.size()) ? &entries[static_cast<size_t>(ref_idx)]
                                                                           : nullptr;
  }

  void check_ref_idx(int list, int ref_idx) const {
    if (ref_idx < 0 || static_cast<size_t>(ref_idx) >= refs_->list[list].size()) {
      fail("ref_idx_l" + std::to_string(list) + " " + std::to_string(ref_idx) + " outside RefPicList" +
           std::to_string(list));
    }
  }

  PbGeometry geometry(const PredictionUnit& pu) const {
    if (pu.w <= 0 || pu.h <= 0 || pu.x < 0 || pu.y < 0 || pu.x + pu.w > 4 * field_.grid_width ||
        pu.y + pu.h > 4 * field_.grid_height) {
      fail("prediction unit outside the picture");
    }
    const size_t g = static_cast<size_t>(pu.y >> 2) * static_cast<size_t>(coding_.grid_width) +
                     static_cast<size_t>(pu.x >> 2);
    if (g >= coding_.log2_cb_size.size() || g >= coding_.part_mode.size()) fail("prediction unit outside the grid");
    PbGeometry out;
    const int log2_cb = coding_.log2_cb_size[g];
    if (log2_cb < 3 || log2_cb > 6) fail("coding block size of a prediction unit");
    out.n_cb_s = 1 << log2_cb;
    out.x_cb = (pu.x >> log2_cb) << log2_cb;
    out.y_cb = (pu.y >> log2_cb) << log2_cb;
    out.x_pb = pu.x;
    out.y_pb = pu.y;
    out.n_pb_w = pu.w;
    out.n_pb_h = pu.h;
    out.part_idx = pu.part_idx;
    out.part_mode = coding_.part_mode[g];
    return out;
  }

  // 6.4.1: z-scan order availability of (x_nb, y_nb) for the block at (x_curr, y_curr), incl. same slice and tile.
  bool zscan_available(int x_curr, int y_curr, int x_nb, int y_nb) const {
    if (x_nb < 0 || y_nb < 0 || x_nb >= field_.pic_width || y_nb >= field_.pic_height) return false;
    const int s = layout_.MinTbLog2SizeY;
    const int tx_nb = x_nb >> s, ty_nb = y_nb >> s, tx_cur = x_curr >> s, ty_cur = y_curr >> s;
    if (tx_nb >= layout_.min_tb_width || ty_nb >= layout_.min_tb_height || tx_cur < 0 || ty_cur < 0 ||
        tx_cur >= layout_.min_tb_width || ty_cur >= layout_.min_tb_height) {
      return false;
    }
    const size_t tb_size = layout_.MinTbAddrZs.size();
    const size_t i_nb = static_cast<size_t>(ty_nb) * static_cast<size_t>(layout_.min_tb_width) + tx_nb;
    const size_t i_cur = static_cast<size_t>(ty_cur) * static_cast<size_t>(layout_.min_tb_width) + tx_cur;
    if (i_nb >= tb_size || i_cur >= tb_size) return false;
    if (layout_.MinTbAddrZs[i_nb] > layout_.MinTbAddrZs[i_cur]) return false;
    const int c = layout_.CtbLog2SizeY;
    // The CTB of the current block is in its slice and tile.
    if ((x_nb >> c) == (x_curr >> c) && (y_nb >> c) == (y_curr >> c)) return true;
    const size_t ctb_nb = static_cast<size_t>(y_nb >> c) * static_cast<size_t>(layout_.PicWidthInCtbsY) + (x_nb >> c);
    const size_t ctb_cur =
        static_cast<size_t>(y_curr >> c) * static_cast<size_t>(layout_.PicWidthInCtbsY) + (x_curr >> c);
    if (ctb_nb >= coding_.ctb_slice_addr.size() || ctb_nb >= layout_.CtbAddrRsToTs.size() ||
        ctb_cur >= layout_.CtbAddrRsToTs.size()) {
      return false;
    }
    if (coding_.ctb_slice_addr[ctb_nb] != slice_addr_rs_) return false;
    const auto ts_nb = static_cast<size_t>(layout_.CtbAddrRsToTs[ctb_nb]);
    const auto ts_cur = static_cast<size_t>(layout_.CtbAddrRsToTs[ctb_cur]);
    if (ts_nb >= layout_.TileId.size() || ts_cur >= layout_.TileId.size()) return false;
    return layout_.TileId[ts_nb] == layout_.TileId[ts_cur];
  }

  // 6.4.2: prediction block availability; the neighbour's motion, or null when unavailable or not inter predicted.
  const BlockMotion* neighbour(const PbGeometry& g, int x_nb, int y_nb) const {
    const bool same_cb = g.x_cb <= x_nb && g.y_cb <= y_nb && g.x_cb + g.n_cb_s > x_nb && g.y_cb + g.n_cb_s > y_nb;
    bool available;
    if (!same_cb) {
      available = zscan_available(g.x_pb, g.y_pb, x_nb, y_nb);
    } else {
      // The second PU of an NxN CU must not use the not yet decoded third one.
      available = !((g.n_pb_w << 1) == g.n_cb_s && (g.n_pb_h << 1) == g.n_cb_s && g.part_idx == 1 &&
                    g.y_cb + g.n_pb_h <= y_nb && g.x_cb + g.n_pb_w > x_nb);
    }
    if (!available) return nullptr;
    // An intra neighbour is unavailable; so is a block without a derived PU (corrupt input only).
    return field_.at(coding_, x_nb, y_nb);
  }

  // 8.5.3.2.2: merge mode.
  BlockMotion merge(const PbGeometry& orig, const PredictionUnit& pu) const {
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
    BlockMotion cand[kMaxMergeCand];
    int n = spatial_merge_candidates(g, cand, pu.merge_idx + 1);
    if (pu.merge_idx >= n) {
      // Temporal candidate with refIdxLXCol = 0 (8.5.3.2.2 step 2, 8.5.3.2.8).
      BlockMotion col;
      Mv mv;
      if (temporal_mv(g, 0, 0, mv)) {
        col.pred_flags = 1;
        col.ref_idx[0] = 0;
        col.mv[0][0] = mv.x;
        col.mv[0][1] = mv.y;
      }
      if (header_.is_b() && temporal_mv(g, 1, 0, mv)) {
        col.pred_flags = static_cast<uint8_t>(col.pred_flags | 2);
        col.ref_idx[1] = 0;
        col.mv[1][0] = mv.x;
        col.mv[1][1] = mv.y;
      }
      if (col.pred_flags != 0 && n < kMaxMergeCand) cand[n++] = col;
      if (header_.is_b()) n = combined_bi_pred_candidates(cand, n);
      n = zero_candidates(cand, n);
    }
    if (pu.merge_idx >= n) fail("merge candidate list shorter than merge_idx");
    BlockMotion m = cand[pu.merge_idx];
    // 8.5.3.2.2 (end): no bi-prediction for 8x4 / 4x8 PUs (nOrigPbW + nOrigPbH == 12).
    if (m.pred_flags == 3 && orig.n_pb_w + orig.n_pb_h == 12) {
      m.pred_flags = 1;
      m.ref_idx[1] = -1;
      m.mv[1][0] = 0;
      m.mv[1][1] = 0;
    }
    m.slice = -1;
    return m;
  }

  // 8.5.3.2.3: spatial merge candidates A1, B1, B0, A0, B2 (in list order), with the parallel merge level, the
  // second-PU exclusions and the listed pruning comparisons. Returns their number, stopping once there are `wanted`
  // (the later candidates cannot change the first ones).
  int spatial_merge_candidates(const PbGeometry& g, BlockMotion* cand, int wanted) const {
    const int lvl = pps_.Log2ParMrgLevel;
    const auto same_merge_region = [&](int x_nb, int y_nb) {
      return (g.x_pb >> lvl) == (x_nb >> lvl) && (g.y_pb >> lvl) == (y_nb >> lvl);
    };
    const auto candidate = [&](int x_nb, int y_nb) -> const BlockMotion* {
      return same_merge_region(x_nb, y_nb) ? nullptr : neighbour(g, x_nb, y_nb);
    };
    int n = 0;
    const int pm = g.part_mode;
    // A1
    const int x_a1 = g.x_pb - 1, y_a1 = g.y_pb + g.n_pb_h - 1;
    const bool second_vertical = g.part_idx == 1 && (pm == kPartNx2N || pm == kPartnLx2N || pm == kPartnRx2N);
    const BlockMotion* a1 = second_vertical ? nullptr : candidate(x_a1, y_a1);
    if (a1 != nullptr) cand[n++] = *a1;
    if (n == wanted) return n;
    // B1
    const int x_b1 = g.x_pb + g.n_pb_w - 1, y_b1 = g.y_pb - 1;
    const bool second_horizontal = g.part_idx == 1 && (pm == kPart2NxN || pm == kPart2NxnU || pm == kPart2NxnD);
    const BlockMotion* b1 = second_horizontal ? nullptr : candidate(x_b1, y_b1);
    if (b1 != nullptr && !(a1 != nullptr && same_motion(*a1, *b1))) cand[n++] = *b1;
    if (n == wanted) return n;
    // B0
    const BlockMotion* b0 = candidate(g.x_pb + g.n_pb_w, g.y_pb - 1);
    if (b0 != nullptr && !(b1 != nullptr && same_motion(*b1, *b0))) cand[n++] = *b0;
    if (n == wanted) return n;
    // A0
    const BlockMotion* a0 = candidate(g.x_pb - 1, g.y_pb + g.n_pb_h);
    if (a0 != nullptr && !(a1 != nullptr && same_motion(*a1, *a0))) cand[n++] = *a0;
    if (n == wanted) return n;
    // B2: only when fewer than four of A0, A1, B0, B1 are candidates.
    if (n < 4) {
      const BlockMotion* b2 = candidate(g.x_pb - 1, g.y_pb - 1);
      if (b2 != nullptr && !(a1 != nullptr && same_motion(*a1, *b2)) && !(b1 != nullptr && same_motion(*b1, *b2))) {
        cand[n++] = *b2;
      }
    }
    return n;
  }

  // 8.5.3.2.4: combined bi-predictive merge candidates (B slices). Returns the new numMergeCand.
  int combined_bi_pred_candidates(BlockMotion* cand, int num_merge_cand) const {
    static constexpr int kL0CandIdx[12] = {0, 1, 0, 2, 1, 2, 0, 3, 1, 3, 2, 3};
    static constexpr int kL1CandIdx[12] = {1, 0, 2, 0, 2, 1, 3, 0, 3, 1, 3, 2};
    const int num_orig = num_merge_cand;
    const int max_cand = header_.MaxNumMergeCand;
    if (num_orig <= 1 || num_orig >= max_cand) return num_merge_cand;
    for (int comb_idx = 0; comb_idx < 12; ++comb_idx) {
      const BlockMotion& l0 = cand[kL0CandIdx[comb_idx]];
      const BlockMotion& l1 = cand[kL1CandIdx[comb_idx]];
      const RefPicInfo* r0 = l0.pred_flag(0) ? current_ref(0, l0.ref_idx[0]) : nullptr;
      const RefPicInfo* r1 = l1.pred_flag(1) ? current_ref(1, l1.ref_idx[1]) : nullptr;
      // Both lists used, and DiffPicOrderCnt(RefPicList0[refIdxL0l0Cand], RefPicList1[refIdxL1l1Cand]) != 0 or
      // different vectors.
      if (r0 != nullptr && r1 != nullptr && (r0->poc != r1->poc || mv_of(l0, 0) != mv_of(l1, 1))) {
        BlockMotion c;
        c.pred_flags = 3;
        c.ref_idx[0] = l0.ref_idx[0];
        c.ref_idx[1] = l1.ref_idx[1];
        c.mv[0][0] = l0.mv[0][0];
        c.mv[0][1] = l0.mv[0][1];
        c.mv[1][0] = l1.mv[1][0];
        c.mv[1][1] = l1.mv[1][1];
        cand[num_merge_cand++] = c;
      }
      if (comb_idx + 1 == num_orig * (num_orig - 1) || num_merge_cand == max_cand) break;
    }
    return num_merge_cand;
  }

  // 8.5.3.2.5: zero motion vector merge candidates up to MaxNumMergeCand. Returns the new numMergeCand.
  int zero_candidates(BlockMotion* cand, int num_merge_cand) const {
    const int num_ref_idx = header_.is_b()
                                ? std::min(header_.num_ref_idx_active(0), header_.num_ref_idx_active(1))
                                : header_.num_ref_idx_active(0);
    int zero_idx = 0;
    while (num_merge_cand < header_.MaxNumMergeCand) {
      const int ref_idx = zero_idx < num_ref_idx ? zero_idx : 0;
      BlockMotion c;
      c.pred_flags = header_.is_b() ? 3 : 1;
      c.ref_idx[0] = static_cast<int8_t>(ref_idx);
      c.ref_idx[1] = header_.is_b() ? static_cast<int8_t>(ref_idx) : int8_t{-1};
      cand[num_merge_cand++] = c;
      ++zero_idx;
    }
    return num_merge_cand;
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
    const int64_t tb = field_.poc - target.poc;
    const BlockMotion* a[2] = {neighbour(g, g.x_pb - 1, g.y_pb + g.n_pb_h), neighbour(g, g.x_pb - 1, g.y_pb + g.n_pb_h - 1)};
    const bool is_scaled = a[0] != nullptr || a[1] != nullptr;
    // A without scaling: a neighbour list that refers to the same picture (LX first, then LY).
    avail_a = find_same_picture(a, 2, x, y, target, mv_a);
    if (!avail_a) avail_a = find_scaled(a, 2, x, y, target, tb, mv_a);
    const BlockMotion* b[3] = {neighbour(g, g.x_pb + g.n_pb_w, g.y_pb - 1),
                               neighbour(g, g.x_pb + g.n_pb_w - 1, g.y_pb - 1), neighbour(g, g.x_pb - 1, g.y_pb - 1)};
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
        const RefPicInfo* r = field_.ref(*nb, list);
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
        const RefPicInfo* r = field_.ref(*nb, list);
        if (r == nullptr || r->long_term != target.long_term) continue;
        mv = mv_of(*nb, list);
        if (!r->long_term && !target.long_term) mv = scale_mv(mv, field_.poc - r->poc, tb);
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
    const int c = layout_.CtbLog2SizeY;
    if ((g.y_cb >> c) == (y_br >> c) && y_br < field_.pic_height && x_br < field_.pic_width) {
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
    const int64_t curr_poc_diff = field_.poc - target.poc;
    mv = (target.long_term || col_poc_diff == curr_poc_diff) ? mv_col : scale_mv(mv_col, col_poc_diff, curr_poc_diff);
    return true;
  }

  // Keeps the PU's motion, and the temporal motion storage of the 16x16 blocks whose top-left 4x4 block it covers.
  void store(const PredictionUnit& pu, BlockMotion m) {
    m.slice = static_cast<int32_t>(field_.slices.size()) - 1;
    field_.pus.push_back(m);
    for (int y = (pu.y + 15) & ~15; y < pu.y + pu.h; y += 16) {
      for (int x = (pu.x + 15) & ~15; x < pu.x + pu.w; x += 16) {
        field_.collocated[static_cast<size_t>(y >> 4) * static_cast<size_t>(field_.col_width) +
                          static_cast<size_t>(x >> 4)] = m;
      }
    }
  }

  const Pps& pps_;
  const CtbLayout& layout_;
  const SliceHeader& header_;
  const PictureCodingState& coding_;
  MotionField& field_;
  const SliceRefLists* refs_ = nullptr;
  const MotionField* col_ = nullptr;
  int32_t slice_addr_rs_ = 0;
  bool no_backward_pred_ = true;
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
  const int64_t tb = clip3(-128, 127, tb_raw);
  if (td == 0) return static_cast<int16_t>(mv);
  const int64_t tx = (16384 + (abs64(td) >> 1)) / td;
  const int64_t dist_scale_factor = clip3(-4096, 4095, arith_shift_right(tb * tx + 32, 6));
  const int64_t product = dist_scale_factor * mv;
  const int64_t sign = product < 0 ? -1 : (product > 0 ? 1 : 0);
  return static_cast<int16_t>(clip3(-32768, 32767, sign * ((abs64(product) + 127) >> 8)));
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
      collocated(static_cast<size_t>(col_width) * static_cast<size_t>(col_height)) {}

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
  d.pred_flag.assign(2 * plane, 0);
  d.mv.assign(4 * plane, 0);
  d.ref_idx.assign(2 * plane, -1);
  d.ref_poc.assign(2 * plane, std::numeric_limits<int32_t>::min());
  d.ref_long_term.assign(2 * plane, 0);
  if (d.blocks_w > coding.grid_width || d.blocks_h > coding.grid_height ||
      coding.pu_index.size() < static_cast<size_t>(coding.grid_width) * static_cast<size_t>(coding.grid_height)) {
    throw ParseError(ErrorKind::InvalidValue, "motion export: coding state of another picture geometry");
  }
  // The reference of each list of each derived PU, resolved once per PU rather than per 4x4 block.
  std::vector<const RefPicInfo*> refs(2 * field.pus.size());
  for (size_t i = 0; i < field.pus.size(); ++i) {
    refs[2 * i] = field.ref(field.pus[i], 0);
    refs[2 * i + 1] = field.ref(field.pus[i], 1);
  }
  for (int by = 0; by < d.blocks_h; ++by) {
    const int32_t* pu_row = coding.pu_index.data() + static_cast<size_t>(by) * static_cast<size_t>(coding.grid_width);
    for (int bx = 0; bx < d.blocks_w; ++bx) {
      const int32_t index = pu_row[bx];
      if (index < 0 || static_cast<size_t>(index) >= field.pus.size()) continue;
      const BlockMotion& b = field.pus[static_cast<size_t>(index)];
      const size_t k = static_cast<size_t>(by) * static_cast<size_t>(d.blocks_w) + static_cast<size_t>(bx);
      for (int list = 0; list < 2; ++list) {
        const RefPicInfo* ref = refs[2 * static_cast<size_t>(index) + static_cast<size_t>(list)];
        if (ref == nullptr) continue;
        const size_t i = static_cast<size_t>(list) * plane + k;
        d.pred_flag[i] = 1;
        d.mv[2 * i] = b.mv[list][0];
        d.mv[2 * i + 1] = b.mv[list][1];
        d.ref_idx[i] = b.ref_idx[list];
        d.ref_poc[i] = static_cast<int32_t>(ref->poc);
        d.ref_long_term[i] = ref->long_term ? 1 : 0;
      }
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
  SliceDeriver deriver(pps, layout, header, ref_list0, ref_list1, coding, field);
  if (field.pus.capacity() < coding.pus.size()) field.pus.reserve(std::max(coding.pus.size(), 2 * field.pus.capacity()));
  for (size_t i = field.pus.size(); i < coding.pus.size(); ++i) deriver.derive(coding.pus[i]);
}

}  // namespace arseg::hevc
