// Luma motion vector derivation of the parse-only HEVC parser (ITU-T H.265 clause 8.5.3.2, 04/2013 edition clause
// numbers): merge mode (8.5.3.2.2 .. 8.5.3.2.5), luma motion vector prediction (AMVP, 8.5.3.2.6 / 8.5.3.2.7) and
// temporal motion vector prediction (8.5.3.2.8 / 8.5.3.2.9), with the availability processes of 6.4.1 / 6.4.2.
// It runs on the prediction units the slice-data layer (slice_data.hpp) collected, PU by PU in decode order, and
// fills a per-picture motion field on the 4x4 luma grid. Each picture's field is attached to its DPB picture
// (DpbPicture::motion_field) so that later pictures can use it as the collocated picture.
//
// Corrupt input never reads out of bounds: neighbours outside the picture are unavailable, a collocated picture
// without a motion field (generated placeholder, other geometry) gives no temporal candidate, and reference indices
// or merge indices outside their lists raise ParseError(InvalidValue).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "params.hpp"
#include "refs.hpp"
#include "slice_data.hpp"
#include "slice_header.hpp"

namespace arseg::hevc {

// The reference picture a reference index of a slice refers to.
struct RefPicInfo {
  int64_t poc = 0;         // PicOrderCntVal
  bool long_term = false;  // marked "used for long-term reference" when the slice was decoded
  int64_t dpb_id = -1;     // DpbPicture::id (-1: no picture)
};

// RefPicList0 / RefPicList1 of one slice segment, as the motion field keeps them.
struct SliceRefLists {
  std::vector<RefPicInfo> list[2];
};

// Motion of one 4x4 luma block: predFlagLX (bit X of pred_flags), mvLX (quarter samples) and refIdxLX.
// pred_flags == 0: the block is not inter predicted (intra, or not coded / not derived). An unused list has mv 0
// and ref_idx -1.
struct BlockMotion {
  int16_t mv[2][2] = {{0, 0}, {0, 0}};
  int8_t ref_idx[2] = {-1, -1};
  uint8_t pred_flags = 0;
  int32_t slice = -1;  // index into MotionField::slices of the slice segment that holds the block

  bool pred_flag(int list) const { return ((pred_flags >> list) & 1) != 0; }
};

// Motion of one picture: per prediction unit (the 4x4 blocks map to PUs through PictureCodingState::pu_index) and,
// for its later use as the collocated picture, on the 16x16 grid of the temporal motion vector storage (the motion
// of the top-left 4x4 block of each 16x16 block, 8.5.3.2.8).
class MotionField {
 public:
  // An empty field with the geometry of `coding`, for the picture `poc` / `dpb_id`.
  MotionField(const PictureCodingState& coding, int64_t poc, int64_t dpb_id);

  int64_t picture_index = -1;  // decode-order index
  int64_t poc = 0;
  int64_t dpb_id = -1;
  int pic_width = 0, pic_height = 0;      // luma samples
  int grid_width = 0, grid_height = 0;    // 4x4 blocks of the CTB-aligned area
  int col_width = 0, col_height = 0;      // 16x16 blocks of the CTB-aligned area
  std::vector<BlockMotion> pus;           // motion of PictureCodingState::pus[i], for the PUs derived so far
  // Per 16x16 block (row-major): index into pus of the PU covering its top-left 4x4 block; -1: intra or not coded.
  std::vector<int32_t> collocated;
  std::vector<SliceRefLists> slices;      // per slice segment, in decode order

  // Motion of the 4x4 block holding luma sample (x, y) of the picture parsed into `coding`; null outside the
  // picture and where no derived inter PU covers it.
  const BlockMotion* at(const PictureCodingState& coding, int x, int y) const {
    if (x < 0 || y < 0 || x >= pic_width || y >= pic_height) return nullptr;
    const size_t g = static_cast<size_t>(y >> 2) * static_cast<size_t>(grid_width) + static_cast<size_t>(x >> 2);
    if (g >= coding.pu_index.size()) return nullptr;
    const int32_t index = coding.pu_index[g];
    if (index < 0 || static_cast<size_t>(index) >= pus.size()) return nullptr;
    return &pus[static_cast<size_t>(index)];
  }
  // Stored temporal motion of the 16x16 block holding (x, y); null outside the picture and for an intra (or not
  // coded) block.
  const BlockMotion* collocated_at(int x, int y) const {
    if (x < 0 || y < 0 || x >= pic_width || y >= pic_height) return nullptr;
    const size_t k = static_cast<size_t>(y >> 4) * static_cast<size_t>(col_width) + static_cast<size_t>(x >> 4);
    if (k >= collocated.size()) return nullptr;
    const int32_t index = collocated[k];
    if (index < 0 || static_cast<size_t>(index) >= pus.size()) return nullptr;
    return &pus[static_cast<size_t>(index)];
  }
  // The reference picture of list `list` of the block, or null when the block does not use that list.
  const RefPicInfo* ref(const BlockMotion& b, int list) const {
    if (!b.pred_flag(list) || b.slice < 0 || static_cast<size_t>(b.slice) >= slices.size()) return nullptr;
    const std::vector<RefPicInfo>& entries = slices[static_cast<size_t>(b.slice)].list[list];
    const int ref_idx = b.ref_idx[list];
    if (ref_idx < 0 || static_cast<size_t>(ref_idx) >= entries.size()) return nullptr;
    return &entries[static_cast<size_t>(ref_idx)];
  }
};

// Creates the motion field of the picture whose slice segments are parsed into `coding` and attaches it to
// `picture` (DpbPicture::motion_field holds a MotionField; null `picture`: not attached).
std::shared_ptr<MotionField> start_motion_field(const PictureCodingState& coding, const DpbPicturePtr& picture);

// The motion field attached to `picture` by start_motion_field, or null (no picture, generated placeholder).
const MotionField* motion_field_of(const DpbPicture* picture);

// Derives the motion (8.5.3.2.1) of every PU of `coding` not yet derived (PUs from field.pus.size() on): those of the
// slice segment just parsed by parse_slice_segment_data. Call it once after each slice segment, with that slice
// segment's header and reference lists; `field` must come from start_motion_field for the same picture.
void derive_slice_motion(const Sps& sps, const Pps& pps, const CtbLayout& layout, const SliceHeader& header,
                         const std::vector<RefEntry>& ref_list0, const std::vector<RefEntry>& ref_list1,
                         const PictureCodingState& coding, MotionField& field);

// An allocator whose vectors leave new elements of trivial types uninitialised on resize(): for export buffers that
// are written once, element by element, without a fill pass before.
template <typename T>
struct UninitialisedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  UninitialisedAllocator() = default;
  template <typename U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <typename T>
using ExportBuffer = std::vector<T, UninitialisedAllocator<T>>;

// The motion of a picture as dense arrays over its 4x4 luma blocks (Hb = ceil(pic_height / 4) rows,
// Wb = ceil(pic_width / 4) columns), C order, for export (driver dumps, Python bindings).
struct DenseMotion {
  int64_t decode_index = -1;
  int64_t poc = 0;
  int width = 0, height = 0;          // pic_width/height_in_luma_samples
  int blocks_w = 0, blocks_h = 0;     // Wb, Hb
  ExportBuffer<uint8_t> pred_flag;     // [2][Hb][Wb] predFlagL0 / L1
  ExportBuffer<int16_t> mv;            // [2][Hb][Wb][2] mvLX (x, y) in quarter samples, 0 where unused
  ExportBuffer<int8_t> ref_idx;        // [2][Hb][Wb] refIdxLX, -1 where unused
  ExportBuffer<int32_t> ref_poc;       // [2][Hb][Wb] POC of RefPicListX[refIdxLX], INT32_MIN where unused
  ExportBuffer<uint8_t> ref_long_term;  // [2][Hb][Wb] that reference is a long-term picture
};
DenseMotion dense_motion(const MotionField& field, const PictureCodingState& coding);

// The vector arithmetic of 8.5.3.2 (also used by the tests).
// 8.5.3.2.1 (8-192 .. 8-195): (mvp + mvd) wrapped to 16 bits: u = (mvp + mvd + 2^16) % 2^16, u - 2^16 if u >= 2^15.
// mvp and mvd in [-2^15, 2^15 - 1] (other values are reduced modulo 2^16 the same way).
int16_t add_mvd_wrapped(int32_t mvp, int32_t mvd);
// 8.5.3.2.7 (8-183 .. 8-186) and 8.5.3.2.9 (8-196 .. 8-201): one motion vector component scaled by the POC distances
// td (reference of the candidate) and tb (reference of the current PU), both clipped to -128..127 here. A td of 0
// (non-conforming streams only) leaves the component unscaled.
int16_t scale_mv_component(int32_t mv, int64_t td, int64_t tb);

}  // namespace arseg::hevc
