// Parameter sets: VPS (7.3.2.1), SPS (7.3.2.2), PPS (7.3.2.3) with profile_tier_level (7.3.3),
// scaling_list_data (7.3.4, parsed only), st_ref_pic_set (7.3.7 / 7.4.8), VUI (E.2.1) and HRD (E.2.2, E.2.3);
// and the picture layout the slice-data layer needs (6.5.1 CTB raster/tile scan, 6.5.2 z-scan order).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "bitreader.hpp"

namespace arseg::hevc {

constexpr int kMaxVpsId = 15;
constexpr int kMaxSpsId = 15;
constexpr int kMaxPpsId = 63;
constexpr int kMaxDpbSize = 16;           // MaxDpbSize (A.4.2)
constexpr int kMaxShortTermRpsInSps = 64;  // num_short_term_ref_pic_sets range (7.4.3.2.1)
constexpr int kMaxLongTermRefPicsSps = 32;
constexpr int kMaxSubLayers = 7;
constexpr int kMaxPicWidth = 16888;        // Level 6.2: Sqrt(MaxLumaPs * 8)
constexpr int64_t kMaxLumaPs = 35651584;   // Level 6.2 MaxLumaPs (Table A.8)

// 7.3.3 profile_tier_level() (general part; sub-layer fields are parsed and only their levels kept).
struct ProfileTierLevel {
  int general_profile_space = 0;
  int general_tier_flag = 0;
  int general_profile_idc = 0;
  uint32_t general_profile_compatibility_flags = 0;  // bit j = general_profile_compatibility_flag[j]
  bool general_progressive_source_flag = false;
  bool general_interlaced_source_flag = false;
  bool general_non_packed_constraint_flag = false;
  bool general_frame_only_constraint_flag = false;
  int general_level_idc = 0;
  std::array<int, kMaxSubLayers> sub_layer_level_idc{};  // 0 where not present
};

// E.2.2 hrd_parameters(): what later syntax (SEI) would need; the sub-layer CPB values are only parsed.
struct HrdParameters {
  bool nal_hrd_parameters_present_flag = false;
  bool vcl_hrd_parameters_present_flag = false;
  bool sub_pic_hrd_params_present_flag = false;
  int initial_cpb_removal_delay_length_minus1 = 23;
  int au_cpb_removal_delay_length_minus1 = 23;
  int dpb_output_delay_length_minus1 = 23;
  std::array<int, kMaxSubLayers> cpb_cnt_minus1{};
};

// E.2.1 vui_parameters() (fields that affect later parsing or the picture geometry).
struct Vui {
  int aspect_ratio_idc = 0;
  int sar_width = 0, sar_height = 0;
  bool video_full_range_flag = false;
  int colour_primaries = 2, transfer_characteristics = 2, matrix_coefficients = 2;
  bool field_seq_flag = false;
  bool frame_field_info_present_flag = false;
  bool default_display_window_flag = false;
  int def_disp_win_left_offset = 0, def_disp_win_right_offset = 0;
  int def_disp_win_top_offset = 0, def_disp_win_bottom_offset = 0;
  bool vui_timing_info_present_flag = false;
  uint32_t vui_num_units_in_tick = 0, vui_time_scale = 0;
  bool vui_hrd_parameters_present_flag = false;
  HrdParameters hrd;
};

// 7.3.7 st_ref_pic_set() after the inter-RPS prediction of 7.4.8: DeltaPocS0/S1 (negative / positive POC
// differences, nearest first) and UsedByCurrPicS0/S1.
struct ShortTermRps {
  int num_negative_pics = 0;
  int num_positive_pics = 0;
  std::array<int32_t, kMaxDpbSize> delta_poc_s0{};
  std::array<int32_t, kMaxDpbSize> delta_poc_s1{};
  std::array<bool, kMaxDpbSize> used_by_curr_pic_s0{};
  std::array<bool, kMaxDpbSize> used_by_curr_pic_s1{};
  int num_delta_pocs() const { return num_negative_pics + num_positive_pics; }
};

// 7.3.2.1 video_parameter_set_rbsp(): fully parsed up to vps_extension_flag; vps_extension() (multi-layer)
// is read as opaque extension_data bits (like FFmpeg's CBS), which keeps the reader in sync.
struct Vps {
  int vps_video_parameter_set_id = 0;
  int vps_max_layers_minus1 = 0;
  int vps_max_sub_layers_minus1 = 0;
  bool vps_temporal_id_nesting_flag = true;
  ProfileTierLevel ptl;
  std::array<int, kMaxSubLayers> vps_max_dec_pic_buffering_minus1{};
  std::array<int, kMaxSubLayers> vps_max_num_reorder_pics{};
  bool vps_timing_info_present_flag = false;
  uint32_t vps_num_units_in_tick = 0, vps_time_scale = 0;
  int vps_num_hrd_parameters = 0;
  std::vector<uint8_t> rbsp;  // the RBSP it was parsed from (re-sent identical VPS are recognised by it)
};

// 7.3.2.2 seq_parameter_set_rbsp() with the derived variables of 7.4.3.2.
struct Sps {
  int sps_video_parameter_set_id = 0;
  int sps_max_sub_layers_minus1 = 0;
  bool sps_temporal_id_nesting_flag = true;
  ProfileTierLevel ptl;
  int sps_seq_parameter_set_id = 0;
  int chroma_format_idc = 1;
  bool separate_colour_plane_flag = false;
  int pic_width_in_luma_samples = 0;
  int pic_height_in_luma_samples = 0;
  bool conformance_window_flag = false;
  int conf_win_left_offset = 0, conf_win_right_offset = 0, conf_win_top_offset = 0, conf_win_bottom_offset = 0;
  int bit_depth_luma_minus8 = 0;
  int bit_depth_chroma_minus8 = 0;
  int log2_max_pic_order_cnt_lsb_minus4 = 0;
  std::array<int, kMaxSubLayers> sps_max_dec_pic_buffering_minus1{};
  std::array<int, kMaxSubLayers> sps_max_num_reorder_pics{};
  std::array<uint32_t, kMaxSubLayers> sps_max_latency_increase_plus1{};
  int log2_min_luma_coding_block_size_minus3 = 0;
  int log2_diff_max_min_luma_coding_block_size = 0;
  int log2_min_luma_transform_block_size_minus2 = 0;
  int log2_diff_max_min_luma_transform_block_size = 0;
  int max_transform_hierarchy_depth_inter = 0;
  int max_transform_hierarchy_depth_intra = 0;
  bool scaling_list_enabled_flag = false;
  bool sps_scaling_list_data_present_flag = false;
  bool amp_enabled_flag = false;
  bool sample_adaptive_offset_enabled_flag = false;
  bool pcm_enabled_flag = false;
  int pcm_sample_bit_depth_luma_minus1 = 0;
  int pcm_sample_bit_depth_chroma_minus1 = 0;
  int log2_min_pcm_luma_coding_block_size_minus3 = 0;
  int log2_diff_max_min_pcm_luma_coding_block_size = 0;
  bool pcm_loop_filter_disabled_flag = false;
  int num_short_term_ref_pic_sets = 0;
  std::vector<ShortTermRps> st_rps;  // num_short_term_ref_pic_sets entries
  bool long_term_ref_pics_present_flag = false;
  int num_long_term_ref_pics_sps = 0;
  std::array<uint32_t, kMaxLongTermRefPicsSps> lt_ref_pic_poc_lsb_sps{};
  std::array<bool, kMaxLongTermRefPicsSps> used_by_curr_pic_lt_sps_flag{};
  bool sps_temporal_mvp_enabled_flag = false;
  bool strong_intra_smoothing_enabled_flag = false;
  bool vui_parameters_present_flag = false;
  Vui vui;
  bool sps_extension_present_flag = false;
  bool sps_range_extension_flag = false;
  // 7.3.2.2.2 sps_range_extension()
  bool transform_skip_rotation_enabled_flag = false;
  bool transform_skip_context_enabled_flag = false;
  bool implicit_rdpcm_enabled_flag = false;
  bool explicit_rdpcm_enabled_flag = false;
  bool extended_precision_processing_flag = false;
  bool intra_smoothing_disabled_flag = false;
  bool high_precision_offsets_enabled_flag = false;
  bool persistent_rice_adaptation_enabled_flag = false;
  bool cabac_bypass_alignment_enabled_flag = false;

  // Derived (7.4.3.2.1).
  int ChromaArrayType = 1;
  int SubWidthC = 2, SubHeightC = 2;
  int BitDepthY = 8, BitDepthC = 8, QpBdOffsetY = 0, QpBdOffsetC = 0;
  int MaxPicOrderCntLsb = 16;
  int MinCbLog2SizeY = 3, MinCbSizeY = 8, CtbLog2SizeY = 4, CtbSizeY = 16;
  int MinTbLog2SizeY = 2, MaxTbLog2SizeY = 5;
  int PicWidthInMinCbsY = 0, PicHeightInMinCbsY = 0;
  int PicWidthInCtbsY = 0, PicHeightInCtbsY = 0, PicSizeInCtbsY = 0;
  int Log2MinIpcmCbSizeY = 0, Log2MaxIpcmCbSizeY = 0;
  // Output size in luma samples after the conformance window (7.4.3.2.1).
  int cropped_width = 0, cropped_height = 0;
  // True when a range-extension coding tool is on (the Main/Main10 slice-data layer rejects these).
  bool uses_range_extension_tools() const;
  // sps_max_dec_pic_buffering_minus1[HighestTid] with HighestTid = sps_max_sub_layers_minus1.
  int max_dec_pic_buffering_minus1() const { return sps_max_dec_pic_buffering_minus1[sps_max_sub_layers_minus1]; }

  std::vector<uint8_t> rbsp;
};

// 7.3.2.3 pic_parameter_set_rbsp()
struct Pps {
  int pps_pic_parameter_set_id = 0;
  int pps_seq_parameter_set_id = 0;
  bool dependent_slice_segments_enabled_flag = false;
  bool output_flag_present_flag = false;
  int num_extra_slice_header_bits = 0;
  bool sign_data_hiding_enabled_flag = false;
  bool cabac_init_present_flag = false;
  int num_ref_idx_l0_default_active_minus1 = 0;
  int num_ref_idx_l1_default_active_minus1 = 0;
  int init_qp_minus26 = 0;
  bool constrained_intra_pred_flag = false;
  bool transform_skip_enabled_flag = false;
  bool cu_qp_delta_enabled_flag = false;
  int diff_cu_qp_delta_depth = 0;
  int pps_cb_qp_offset = 0, pps_cr_qp_offset = 0;
  bool pps_slice_chroma_qp_offsets_present_flag = false;
  bool weighted_pred_flag = false;
  bool weighted_bipred_flag = false;
  bool transquant_bypass_enabled_flag = false;
  bool tiles_enabled_flag = false;
  bool entropy_coding_sync_enabled_flag = false;
  int num_tile_columns_minus1 = 0;
  int num_tile_rows_minus1 = 0;
  bool uniform_spacing_flag = true;
  std::vector<int> column_width_minus1;  // num_tile_columns_minus1 entries when !uniform_spacing_flag
  std::vector<int> row_height_minus1;
  bool loop_filter_across_tiles_enabled_flag = true;
  bool pps_loop_filter_across_slices_enabled_flag = false;
  bool deblocking_filter_control_present_flag = false;
  bool deblocking_filter_override_enabled_flag = false;
  bool pps_deblocking_filter_disabled_flag = false;
  int pps_beta_offset_div2 = 0, pps_tc_offset_div2 = 0;
  bool pps_scaling_list_data_present_flag = false;
  bool lists_modification_present_flag = false;
  int log2_parallel_merge_level_minus2 = 0;
  bool slice_segment_header_extension_present_flag = false;
  bool pps_extension_present_flag = false;
  bool pps_range_extension_flag = false;
  // 7.3.2.3.2 pps_range_extension()
  int log2_max_transform_skip_block_size_minus2 = 0;
  bool cross_component_prediction_enabled_flag = false;
  bool chroma_qp_offset_list_enabled_flag = false;
  int diff_cu_chroma_qp_offset_depth = 0;
  int chroma_qp_offset_list_len_minus1 = 0;
  std::array<int, 6> cb_qp_offset_list{};
  std::array<int, 6> cr_qp_offset_list{};
  int log2_sao_offset_scale_luma = 0;
  int log2_sao_offset_scale_chroma = 0;

  // Derived: Log2ParMrgLevel (7.4.3.3).
  int Log2ParMrgLevel = 2;
  bool uses_range_extension_tools() const;

  std::vector<uint8_t> rbsp;
};

// The CTB geometry of a picture for one (SPS, PPS) pair (6.5.1, 6.5.2). Built when a PPS is activated.
struct CtbLayout {
  int PicWidthInCtbsY = 0, PicHeightInCtbsY = 0, PicSizeInCtbsY = 0;
  int CtbLog2SizeY = 4, MinTbLog2SizeY = 2;
  std::vector<int> colWidth, rowHeight;  // in CTBs, per tile column / row
  std::vector<int> colBd, rowBd;         // tile column / row boundaries in CTBs (num + 1 entries)
  std::vector<int> CtbAddrRsToTs, CtbAddrTsToRs, TileId;  // TileId indexed by tile-scan address
  // MinTbAddrZs[y * min_tb_width + x] for min-TB coordinates (x, y) over the CTB-aligned picture area.
  int min_tb_width = 0, min_tb_height = 0;
  std::vector<int32_t> MinTbAddrZs;
  int min_tb_addr_zs(int x, int y) const { return MinTbAddrZs[static_cast<size_t>(y) * min_tb_width + x]; }
};

// 6.5.1 (6-3 .. 6-9) and 6.5.2 (6-10). Throws ParseError(InvalidValue) when the PPS tiles do not fit the SPS.
CtbLayout build_ctb_layout(const Sps& sps, const Pps& pps);

// 7.3.2.1 video_parameter_set_rbsp(); r is positioned after the NAL unit header.
Vps parse_vps(BitReader& r);
// 7.3.2.2 seq_parameter_set_rbsp()
Sps parse_sps(BitReader& r);
// 7.3.2.3 pic_parameter_set_rbsp(); sps_lookup returns the SPS with the given id or null
// (ParseError MissingParameterSet when it is null: value ranges of the PPS depend on its SPS).
Pps parse_pps(BitReader& r, const std::array<std::shared_ptr<const Sps>, kMaxSpsId + 1>& sps_by_id);

// 7.3.7 st_ref_pic_set(stRpsIdx) with the inter-RPS prediction of 7.4.8. `previous` holds the sets
// 0..num_short_term_ref_pic_sets-1 of the SPS (only [0, stRpsIdx) are used); in_slice_header selects the
// delta_idx_minus1 syntax (stRpsIdx == num_short_term_ref_pic_sets).
ShortTermRps parse_st_ref_pic_set(BitReader& r, int st_rps_idx, const std::vector<ShortTermRps>& previous,
                                  int num_short_term_ref_pic_sets, int max_dec_pic_buffering_minus1);

}  // namespace arseg::hevc
