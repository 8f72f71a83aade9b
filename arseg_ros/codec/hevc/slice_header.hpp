// Slice segment header: 7.3.6.1 slice_segment_header(), 7.3.6.2 ref_pic_lists_modification(),
// 7.3.6.3 pred_weight_table(), semantics 7.4.7.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "nal.hpp"
#include "params.hpp"

namespace arseg::hevc {

constexpr int kMaxRefIdx = 16;  // num_ref_idx_lX_active_minus1 <= 14 (+1), one spare

enum SliceType : int { kSliceB = 0, kSliceP = 1, kSliceI = 2 };

// 7.3.6.3 pred_weight_table() with the derived weights and offsets of 7.4.7.3 (LumaWeightLX, luma_offset_lX,
// ChromaWeightLX, ChromaOffsetLX), indexed [list][ref_idx] and [list][ref_idx][Cb/Cr].
struct PredWeightTable {
  int luma_log2_weight_denom = 0;
  int ChromaLog2WeightDenom = 0;
  std::array<std::array<bool, kMaxRefIdx>, 2> luma_weight_flag{};
  std::array<std::array<bool, kMaxRefIdx>, 2> chroma_weight_flag{};
  std::array<std::array<int, kMaxRefIdx>, 2> LumaWeight{};
  std::array<std::array<int, kMaxRefIdx>, 2> luma_offset{};
  std::array<std::array<std::array<int, 2>, kMaxRefIdx>, 2> ChromaWeight{};
  std::array<std::array<std::array<int, 2>, kMaxRefIdx>, 2> ChromaOffset{};
};

// All fields of one slice segment header. For a dependent slice segment the fields after
// slice_segment_address are copies of the preceding independent slice segment of the same picture.
struct SliceHeader {
  NalHeader nal;
  bool first_slice_segment_in_pic_flag = false;
  bool no_output_of_prior_pics_flag = false;
  int slice_pic_parameter_set_id = 0;
  bool dependent_slice_segment_flag = false;
  uint32_t slice_segment_address = 0;
  uint32_t slice_reserved_flags = 0;  // bit i = slice_reserved_flag[i]
  int slice_type = kSliceI;
  bool pic_output_flag = true;
  int colour_plane_id = 0;
  uint32_t slice_pic_order_cnt_lsb = 0;
  bool short_term_ref_pic_set_sps_flag = false;
  int short_term_ref_pic_set_idx = 0;
  ShortTermRps st_rps;  // the RPS in use: from the SPS (by index) or coded in this header
  int st_rps_bits = 0;  // bits of st_ref_pic_set() in the header (NumBitsForShortTermRPS, hardware APIs need it)
  // Long-term pictures (7.4.7.1): PocLsbLt, UsedByCurrPicLt, delta_poc_msb_present_flag, DeltaPocMsbCycleLt.
  int num_long_term_sps = 0;
  int num_long_term_pics = 0;
  std::array<uint32_t, kMaxDpbSize> PocLsbLt{};
  std::array<bool, kMaxDpbSize> UsedByCurrPicLt{};
  std::array<bool, kMaxDpbSize> delta_poc_msb_present_flag{};
  std::array<int64_t, kMaxDpbSize> DeltaPocMsbCycleLt{};
  bool slice_temporal_mvp_enabled_flag = false;
  bool slice_sao_luma_flag = false;
  bool slice_sao_chroma_flag = false;
  bool num_ref_idx_active_override_flag = false;
  int num_ref_idx_l0_active_minus1 = 0;
  int num_ref_idx_l1_active_minus1 = 0;
  bool ref_pic_list_modification_flag_l0 = false;
  bool ref_pic_list_modification_flag_l1 = false;
  std::array<int, kMaxRefIdx> list_entry_l0{};
  std::array<int, kMaxRefIdx> list_entry_l1{};
  bool mvd_l1_zero_flag = false;
  bool cabac_init_flag = false;
  bool collocated_from_l0_flag = true;
  int collocated_ref_idx = 0;
  PredWeightTable pwt;  // meaningful when has_pred_weight_table
  bool has_pred_weight_table = false;
  int five_minus_max_num_merge_cand = 0;
  int MaxNumMergeCand = 5;
  int slice_qp_delta = 0;
  int SliceQpY = 26;  // (7-54) 26 + init_qp_minus26 + slice_qp_delta
  int slice_cb_qp_offset = 0;
  int slice_cr_qp_offset = 0;
  bool cu_chroma_qp_offset_enabled_flag = false;
  bool deblocking_filter_override_flag = false;
  bool slice_deblocking_filter_disabled_flag = false;
  int slice_beta_offset_div2 = 0;
  int slice_tc_offset_div2 = 0;
  bool slice_loop_filter_across_slices_enabled_flag = false;
  int num_entry_point_offsets = 0;
  int offset_len_minus1 = 0;
  std::vector<uint32_t> entry_point_offset_minus1;
  int slice_segment_header_extension_length = 0;
  // Derived.
  int NumPicTotalCurr = 0;  // (7-55)
  // RBSP byte (and bit = 8 * byte) at which slice_segment_data() starts, after byte_alignment().
  size_t slice_data_byte_offset = 0;

  bool is_intra() const { return slice_type == kSliceI; }
  bool is_b() const { return slice_type == kSliceB; }
  int num_ref_idx_active(int list) const {
    if (slice_type == kSliceI || (list == 1 && slice_type != kSliceB)) return 0;
    return (list == 0 ? num_ref_idx_l0_active_minus1 : num_ref_idx_l1_active_minus1) + 1;
  }
};

// 7.3.6.1 slice_segment_header(); r is positioned after the NAL unit header. `independent` is the preceding
// independent slice segment header of the same picture (needed for dependent slice segments, else may be null).
// Reads up to and including byte_alignment(); sets slice_data_byte_offset.
SliceHeader parse_slice_header(BitReader& r, const NalHeader& nal, const Sps& sps, const Pps& pps,
                               const SliceHeader* independent);

// Reads first_slice_segment_in_pic_flag, no_output_of_prior_pics_flag and slice_pic_parameter_set_id only
// (to find the PPS and to detect the first slice segment of a picture) from the start of an RBSP.
struct SliceHeaderPrefix {
  bool first_slice_segment_in_pic_flag = false;
  int slice_pic_parameter_set_id = 0;
};
SliceHeaderPrefix peek_slice_header(const uint8_t* rbsp, size_t size);

}  // namespace arseg::hevc
