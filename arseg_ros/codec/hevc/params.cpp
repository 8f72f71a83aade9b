#include "params.hpp"

#include <algorithm>
#include <string>

namespace arseg::hevc {

namespace {

constexpr uint32_t kMaxUe = 0xFFFFFFFEU;  // largest ue(v) value with the 32-bit cap

void unsupported(const BitReader& r, const std::string& what) { r.fail(ErrorKind::Unsupported, what); }

// Reads the extension data bits up to the rbsp_stop_one_bit (named like FFmpeg's CBS: extension_data).
void skip_extension_data(BitReader& r) {
  while (r.more_rbsp_data()) r.u(1, "extension_data");
}

// The general_/sub_layer_ part of 7.3.3 that follows the profile idc and compatibility flags.
// Names follow FFmpeg's CBS; fields of more than 24 bits are traced in 24-bit pieces.
void ptl_constraint_flags(BitReader& r, const std::string& prefix, int index, int profile_idc, uint32_t compat) {
  const auto compatible = [&](int p) { return profile_idc == p || ((compat >> p) & 1U) != 0; };
  const auto name = [&](const char* suffix) { return prefix + suffix; };
  const auto flag = [&](const char* suffix) {
    const std::string n = name(suffix);
    if (index < 0) {
      r.flag(n.c_str());
    } else {
      r.flag(Name(n.c_str(), index));
    }
  };
  const auto reserved = [&](unsigned bits, const char* suffix) {
    const std::string n = name(suffix);
    r.reserved_bits(bits, n.c_str());
  };
  if (compatible(4) || compatible(5) || compatible(6) || compatible(7) || compatible(8) || compatible(9) ||
      compatible(10) || compatible(11)) {
    flag("max_12bit_constraint_flag");
    flag("max_10bit_constraint_flag");
    flag("max_8bit_constraint_flag");
    flag("max_422chroma_constraint_flag");
    flag("max_420chroma_constraint_flag");
    flag("max_monochrome_constraint_flag");
    flag("intra_constraint_flag");
    flag("one_picture_only_constraint_flag");
    flag("lower_bit_rate_constraint_flag");
    if (compatible(5) || compatible(9) || compatible(10) || compatible(11)) {
      flag("max_14bit_constraint_flag");
      reserved(33, "reserved_zero_33bits");
    } else {
      reserved(34, "reserved_zero_34bits");
    }
  } else if (compatible(2)) {
    reserved(7, "reserved_zero_7bits");
    flag("one_picture_only_constraint_flag");
    // FFmpeg names the sub-layer variant of this 35-bit field "..._43bits"; the trace keeps its names.
    reserved(35, index < 0 ? "reserved_zero_35bits" : "reserved_zero_43bits");
  } else {
    reserved(43, "reserved_zero_43bits");
  }
  if (compatible(1) || compatible(2) || compatible(3) || compatible(4) || compatible(5) || compatible(9) ||
      compatible(11)) {
    flag("inbld_flag");
  } else {
    reserved(1, "reserved_zero_bit");
  }
}

// 7.3.3 profile_tier_level(1, maxNumSubLayersMinus1)
ProfileTierLevel parse_profile_tier_level(BitReader& r, int max_num_sub_layers_minus1) {
  ProfileTierLevel p;
  p.general_profile_space = static_cast<int>(r.u(2, "general_profile_space"));
  p.general_tier_flag = static_cast<int>(r.u(1, "general_tier_flag"));
  p.general_profile_idc = static_cast<int>(r.u(5, "general_profile_idc"));
  for (int j = 0; j < 32; ++j) {
    if (r.flag(Name("general_profile_compatibility_flag", j))) p.general_profile_compatibility_flags |= 1U << j;
  }
  p.general_progressive_source_flag = r.flag("general_progressive_source_flag");
  p.general_interlaced_source_flag = r.flag("general_interlaced_source_flag");
  p.general_non_packed_constraint_flag = r.flag("general_non_packed_constraint_flag");
  p.general_frame_only_constraint_flag = r.flag("general_frame_only_constraint_flag");
  ptl_constraint_flags(r, "general_", -1, p.general_profile_idc, p.general_profile_compatibility_flags);
  p.general_level_idc = static_cast<int>(r.u(8, "general_level_idc"));

  std::array<bool, kMaxSubLayers> profile_present{};
  std::array<bool, kMaxSubLayers> level_present{};
  for (int i = 0; i < max_num_sub_layers_minus1; ++i) {
    profile_present[i] = r.flag(Name("sub_layer_profile_present_flag", i));
    level_present[i] = r.flag(Name("sub_layer_level_present_flag", i));
  }
  if (max_num_sub_layers_minus1 > 0) {
    for (int i = max_num_sub_layers_minus1; i < 8; ++i) r.u(2, "reserved_zero_2bits");
  }
  for (int i = 0; i < max_num_sub_layers_minus1; ++i) {
    if (profile_present[i]) {
      r.u(2, Name("sub_layer_profile_space", i));
      r.flag(Name("sub_layer_tier_flag", i));
      const auto idc = static_cast<int>(r.u(5, Name("sub_layer_profile_idc", i)));
      uint32_t compat = 0;
      for (int j = 0; j < 32; ++j) {
        if (r.flag(Name("sub_layer_profile_compatibility_flag", i, j))) compat |= 1U << j;
      }
      r.flag(Name("sub_layer_progressive_source_flag", i));
      r.flag(Name("sub_layer_interlaced_source_flag", i));
      r.flag(Name("sub_layer_non_packed_constraint_flag", i));
      r.flag(Name("sub_layer_frame_only_constraint_flag", i));
      ptl_constraint_flags(r, "sub_layer_", i, idc, compat);
    }
    if (level_present[i]) p.sub_layer_level_idc[i] = static_cast<int>(r.u(8, Name("sub_layer_level_idc", i)));
  }
  return p;
}

// E.2.3 sub_layer_hrd_parameters(subLayerId)
void parse_sub_layer_hrd_parameters(BitReader& r, int cpb_cnt, bool sub_pic_hrd_params_present_flag) {
  for (int i = 0; i < cpb_cnt; ++i) {
    r.ue(Name("bit_rate_value_minus1", i), 0, kMaxUe);
    r.ue(Name("cpb_size_value_minus1", i), 0, kMaxUe);
    if (sub_pic_hrd_params_present_flag) {
      r.ue(Name("cpb_size_du_value_minus1", i), 0, kMaxUe);
      r.ue(Name("bit_rate_du_value_minus1", i), 0, kMaxUe);
    }
    r.flag(Name("cbr_flag", i));
  }
}

// E.2.2 hrd_parameters(commonInfPresentFlag, maxNumSubLayersMinus1)
HrdParameters parse_hrd_parameters(BitReader& r, bool common_inf_present_flag, int max_num_sub_layers_minus1) {
  HrdParameters h;
  if (common_inf_present_flag) {
    h.nal_hrd_parameters_present_flag = r.flag("nal_hrd_parameters_present_flag");
    h.vcl_hrd_parameters_present_flag = r.flag("vcl_hrd_parameters_present_flag");
    if (h.nal_hrd_parameters_present_flag || h.vcl_hrd_parameters_present_flag) {
      h.sub_pic_hrd_params_present_flag = r.flag("sub_pic_hrd_params_present_flag");
      if (h.sub_pic_hrd_params_present_flag) {
        r.u(8, "tick_divisor_minus2");
        r.u(5, "du_cpb_removal_delay_increment_length_minus1");
        r.flag("sub_pic_cpb_params_in_pic_timing_sei_flag");
        r.u(5, "dpb_output_delay_du_length_minus1");
      }
      r.u(4, "bit_rate_scale");
      r.u(4, "cpb_size_scale");
      if (h.sub_pic_hrd_params_present_flag) r.u(4, "cpb_size_du_scale");
      h.initial_cpb_removal_delay_length_minus1 = static_cast<int>(r.u(5, "initial_cpb_removal_delay_length_minus1"));
      h.au_cpb_removal_delay_length_minus1 = static_cast<int>(r.u(5, "au_cpb_removal_delay_length_minus1"));
      h.dpb_output_delay_length_minus1 = static_cast<int>(r.u(5, "dpb_output_delay_length_minus1"));
    }
  }
  for (int i = 0; i <= max_num_sub_layers_minus1; ++i) {
    const bool fixed_general = r.flag(Name("fixed_pic_rate_general_flag", i));
    bool fixed_within_cvs = true;
    if (!fixed_general) fixed_within_cvs = r.flag(Name("fixed_pic_rate_within_cvs_flag", i));
    bool low_delay = false;
    if (fixed_within_cvs) {
      r.ue(Name("elemental_duration_in_tc_minus1", i), 0, 2047);
    } else {
      low_delay = r.flag(Name("low_delay_hrd_flag", i));
    }
    if (!low_delay) h.cpb_cnt_minus1[i] = static_cast<int>(r.ue(Name("cpb_cnt_minus1", i), 0, 31));
    const int cpb_cnt = h.cpb_cnt_minus1[i] + 1;
    if (h.nal_hrd_parameters_present_flag) parse_sub_layer_hrd_parameters(r, cpb_cnt, h.sub_pic_hrd_params_present_flag);
    if (h.vcl_hrd_parameters_present_flag) parse_sub_layer_hrd_parameters(r, cpb_cnt, h.sub_pic_hrd_params_present_flag);
  }
  return h;
}

// E.2.1 vui_parameters()
Vui parse_vui(BitReader& r, const Sps& sps) {
  Vui v;
  if (r.flag("aspect_ratio_info_present_flag")) {
    v.aspect_ratio_idc = static_cast<int>(r.u(8, "aspect_ratio_idc"));
    if (v.aspect_ratio_idc == 255) {
      v.sar_width = static_cast<int>(r.u(16, "sar_width"));
      v.sar_height = static_cast<int>(r.u(16, "sar_height"));
    }
  }
  if (r.flag("overscan_info_present_flag")) r.flag("overscan_appropriate_flag");
  if (r.flag("video_signal_type_present_flag")) {
    r.u(3, "video_format");
    v.video_full_range_flag = r.flag("video_full_range_flag");
    if (r.flag("colour_description_present_flag")) {
      v.colour_primaries = static_cast<int>(r.u(8, "colour_primaries"));
      v.transfer_characteristics = static_cast<int>(r.u(8, "transfer_characteristics"));
      v.matrix_coefficients = static_cast<int>(r.u(8, "matrix_coefficients"));
    }
  }
  if (r.flag("chroma_loc_info_present_flag")) {
    r.ue("chroma_sample_loc_type_top_field", 0, 5);
    r.ue("chroma_sample_loc_type_bottom_field", 0, 5);
  }
  r.flag("neutral_chroma_indication_flag");
  v.field_seq_flag = r.flag("field_seq_flag");
  v.frame_field_info_present_flag = r.flag("frame_field_info_present_flag");
  v.default_display_window_flag = r.flag("default_display_window_flag");
  if (v.default_display_window_flag) {
    const auto w = static_cast<uint32_t>(sps.pic_width_in_luma_samples);
    const auto h = static_cast<uint32_t>(sps.pic_height_in_luma_samples);
    v.def_disp_win_left_offset = static_cast<int>(r.ue("def_disp_win_left_offset", 0, w));
    v.def_disp_win_right_offset = static_cast<int>(r.ue("def_disp_win_right_offset", 0, w));
    v.def_disp_win_top_offset = static_cast<int>(r.ue("def_disp_win_top_offset", 0, h));
    v.def_disp_win_bottom_offset = static_cast<int>(r.ue("def_disp_win_bottom_offset", 0, h));
  }
  v.vui_timing_info_present_flag = r.flag("vui_timing_info_present_flag");
  if (v.vui_timing_info_present_flag) {
    v.vui_num_units_in_tick = r.u(32, "vui_num_units_in_tick");
    v.vui_time_scale = r.u(32, "vui_time_scale");
    if (r.flag("vui_poc_proportional_to_timing_flag")) r.ue("vui_num_ticks_poc_diff_one_minus1", 0, kMaxUe);
    v.vui_hrd_parameters_present_flag = r.flag("vui_hrd_parameters_present_flag");
    if (v.vui_hrd_parameters_present_flag) v.hrd = parse_hrd_parameters(r, true, sps.sps_max_sub_layers_minus1);
  }
  if (r.flag("bitstream_restriction_flag")) {
    r.flag("tiles_fixed_structure_flag");
    r.flag("motion_vectors_over_pic_boundaries_flag");
    r.flag("restricted_ref_pic_lists_flag");
    r.ue("min_spatial_segmentation_idc", 0, 4095);
    r.ue("max_bytes_per_pic_denom", 0, 16);
    r.ue("max_bits_per_min_cu_denom", 0, 16);
    r.ue("log2_max_mv_length_horizontal", 0, 16);
    r.ue("log2_max_mv_length_vertical", 0, 16);
  }
  return v;
}

// 7.3.4 scaling_list_data(): parsed only, the values are not needed without dequantisation.
void parse_scaling_list_data(BitReader& r) {
  for (int size_id = 0; size_id < 4; ++size_id) {
    for (int matrix_id = 0; matrix_id < 6; matrix_id += (size_id == 3) ? 3 : 1) {
      if (!r.flag(Name("scaling_list_pred_mode_flag", size_id, matrix_id))) {
        const auto max_delta = static_cast<uint32_t>(size_id == 3 ? matrix_id / 3 : matrix_id);
        r.ue(Name("scaling_list_pred_matrix_id_delta", size_id, matrix_id), 0, max_delta);
      } else {
        const int coef_num = std::min(64, 1 << (4 + (size_id << 1)));
        if (size_id > 1) r.se(Name("scaling_list_dc_coef_minus8", size_id - 2, matrix_id), -7, 247);
        for (int i = 0; i < coef_num; ++i) r.se(Name("scaling_list_delta_coeff", size_id, matrix_id, i), -128, 127);
      }
    }
  }
}

}  // namespace

bool Sps::uses_range_extension_tools() const {
  return transform_skip_rotation_enabled_flag || transform_skip_context_enabled_flag ||
         implicit_rdpcm_enabled_flag || explicit_rdpcm_enabled_flag || extended_precision_processing_flag ||
         intra_smoothing_disabled_flag || high_precision_offsets_enabled_flag ||
         persistent_rice_adaptation_enabled_flag || cabac_bypass_alignment_enabled_flag;
}

bool Pps::uses_range_extension_tools() const {
  return log2_max_transform_skip_block_size_minus2 != 0 || cross_component_prediction_enabled_flag ||
         chroma_qp_offset_list_enabled_flag || log2_sao_offset_scale_luma != 0 || log2_sao_offset_scale_chroma != 0;
}

// 7.3.7 st_ref_pic_set(stRpsIdx), semantics 7.4.8.
ShortTermRps parse_st_ref_pic_set(BitReader& r, int st_rps_idx, const std::vector<ShortTermRps>& previous,
                                  int num_short_term_ref_pic_sets, int max_dec_pic_buffering_minus1) {
  ShortTermRps rps;
  bool inter_ref_pic_set_prediction_flag = false;
  if (st_rps_idx != 0) inter_ref_pic_set_prediction_flag = r.flag("inter_ref_pic_set_prediction_flag");
  if (inter_ref_pic_set_prediction_flag) {
    int delta_idx_minus1 = 0;
    if (st_rps_idx == num_short_term_ref_pic_sets) {
      delta_idx_minus1 = static_cast<int>(r.ue("delta_idx_minus1", 0, static_cast<uint32_t>(st_rps_idx - 1)));
    }
    const int ref_rps_idx = st_rps_idx - (delta_idx_minus1 + 1);  // (7-59)
    const ShortTermRps& ref = previous[static_cast<size_t>(ref_rps_idx)];
    const bool delta_rps_sign = r.flag("delta_rps_sign");
    const auto abs_delta_rps_minus1 = static_cast<int32_t>(r.ue("abs_delta_rps_minus1", 0, 32767));
    const int32_t delta_rps = (delta_rps_sign ? -1 : 1) * (abs_delta_rps_minus1 + 1);  // (7-60)
    const int num_delta_pocs = ref.num_delta_pocs();
    std::array<bool, kMaxDpbSize + 1> used_by_curr_pic_flag{};
    std::array<bool, kMaxDpbSize + 1> use_delta_flag{};
    for (int j = 0; j <= num_delta_pocs; ++j) {
      used_by_curr_pic_flag[j] = r.flag(Name("used_by_curr_pic_flag", j));
      use_delta_flag[j] = used_by_curr_pic_flag[j] ? true : r.flag(Name("use_delta_flag", j));
    }
    // (7-61) and (7-62): candidates in increasing distance from the current picture.
    std::vector<std::pair<int32_t, bool>> s0;
    std::vector<std::pair<int32_t, bool>> s1;
    for (int j = ref.num_positive_pics - 1; j >= 0; --j) {
      const int32_t d_poc = ref.delta_poc_s1[j] + delta_rps;
      if (d_poc < 0 && use_delta_flag[ref.num_negative_pics + j]) {
        s0.emplace_back(d_poc, used_by_curr_pic_flag[ref.num_negative_pics + j]);
      }
    }
    if (delta_rps < 0 && use_delta_flag[num_delta_pocs]) s0.emplace_back(delta_rps, used_by_curr_pic_flag[num_delta_pocs]);
    for (int j = 0; j < ref.num_negative_pics; ++j) {
      const int32_t d_poc = ref.delta_poc_s0[j] + delta_rps;
      if (d_poc < 0 && use_delta_flag[j]) s0.emplace_back(d_poc, used_by_curr_pic_flag[j]);
    }
    for (int j = ref.num_negative_pics - 1; j >= 0; --j) {
      const int32_t d_poc = ref.delta_poc_s0[j] + delta_rps;
      if (d_poc > 0 && use_delta_flag[j]) s1.emplace_back(d_poc, used_by_curr_pic_flag[j]);
    }
    if (delta_rps > 0 && use_delta_flag[num_delta_pocs]) s1.emplace_back(delta_rps, used_by_curr_pic_flag[num_delta_pocs]);
    for (int j = 0; j < ref.num_positive_pics; ++j) {
      const int32_t d_poc = ref.delta_poc_s1[j] + delta_rps;
      if (d_poc > 0 && use_delta_flag[ref.num_negative_pics + j]) {
        s1.emplace_back(d_poc, used_by_curr_pic_flag[ref.num_negative_pics + j]);
      }
    }
    if (s0.size() + s1.size() > static_cast<size_t>(kMaxDpbSize)) {
      r.fail(ErrorKind::InvalidValue, "predicted short-term RPS " + std::to_string(st_rps_idx) + " has " +
                                          std::to_string(s0.size() + s1.size()) + " pictures (at most 16)");
    }
    rps.num_negative_pics = static_cast<int>(s0.size());
    rps.num_positive_pics = static_cast<int>(s1.size());
    for (size_t i = 0; i < s0.size(); ++i) {
      rps.delta_poc_s0[i] = s0[i].first;
      rps.used_by_curr_pic_s0[i] = s0[i].second;
    }
    for (size_t i = 0; i < s1.size(); ++i) {
      rps.delta_poc_s1[i] = s1[i].first;
      rps.used_by_curr_pic_s1[i] = s1[i].second;
    }
    return rps;
  }
  const auto max_pics = static_cast<uint32_t>(max_dec_pic_buffering_minus1);
  rps.num_negative_pics = static_cast<int>(r.ue("num_negative_pics", 0, max_pics));
  rps.num_positive_pics =
      static_cast<int>(r.ue("num_positive_pics", 0, max_pics - static_cast<uint32_t>(rps.num_negative_pics)));
  int32_t poc = 0;
  for (int i = 0; i < rps.num_negative_pics; ++i) {
    poc -= static_cast<int32_t>(r.ue(Name("delta_poc_s0_minus1", i), 0, 32767)) + 1;  // (7-65), (7-67)
    rps.delta_poc_s0[i] = poc;
    rps.used_by_curr_pic_s0[i] = r.flag(Name("used_by_curr_pic_s0_flag", i));
  }
  poc = 0;
  for (int i = 0; i < rps.num_positive_pics; ++i) {
    poc += static_cast<int32_t>(r.ue(Name("delta_poc_s1_minus1", i), 0, 32767)) + 1;  // (7-66), (7-68)
    rps.delta_poc_s1[i] = poc;
    rps.used_by_curr_pic_s1[i] = r.flag(Name("used_by_curr_pic_s1_flag", i));
  }
  return rps;
}

// 7.3.2.1 video_parameter_set_rbsp()
Vps parse_vps(BitReader& r) {
  Vps v;
  v.vps_video_parameter_set_id = static_cast<int>(r.u(4, "vps_video_parameter_set_id"));
  const bool base_layer_internal = r.flag("vps_base_layer_internal_flag");
  r.flag("vps_base_layer_available_flag");
  v.vps_max_layers_minus1 = static_cast<int>(r.u(6, "vps_max_layers_minus1"));
  v.vps_max_sub_layers_minus1 = static_cast<int>(r.u_range(3, "vps_max_sub_layers_minus1", 0, kMaxSubLayers - 1));
  v.vps_temporal_id_nesting_flag = r.flag("vps_temporal_id_nesting_flag");
  r.u(16, "vps_reserved_0xffff_16bits");
  v.ptl = parse_profile_tier_level(r, v.vps_max_sub_layers_minus1);
  const bool ordering_present = r.flag("vps_sub_layer_ordering_info_present_flag");
  for (int i = ordering_present ? 0 : v.vps_max_sub_layers_minus1; i <= v.vps_max_sub_layers_minus1; ++i) {
    v.vps_max_dec_pic_buffering_minus1[i] =
        static_cast<int>(r.ue(Name("vps_max_dec_pic_buffering_minus1", i), 0, kMaxDpbSize - 1));
    v.vps_max_num_reorder_pics[i] = static_cast<int>(
        r.ue(Name("vps_max_num_reorder_pics", i), 0, static_cast<uint32_t>(v.vps_max_dec_pic_buffering_minus1[i])));
    r.ue(Name("vps_max_latency_increase_plus1", i), 0, kMaxUe);
  }
  const auto vps_max_layer_id = static_cast<int>(r.u_range(6, "vps_max_layer_id", 0, 62));
  const auto num_layer_sets_minus1 = static_cast<int>(r.ue("vps_num_layer_sets_minus1", 0, 1023));
  for (int i = 1; i <= num_layer_sets_minus1; ++i) {
    for (int j = 0; j <= vps_max_layer_id; ++j) r.flag(Name("layer_id_included_flag", i, j));
  }
  v.vps_timing_info_present_flag = r.flag("vps_timing_info_present_flag");
  if (v.vps_timing_info_present_flag) {
    v.vps_num_units_in_tick = r.u(32, "vps_num_units_in_tick");
    v.vps_time_scale = r.u(32, "vps_time_scale");
    if (r.flag("vps_poc_proportional_to_timing_flag")) r.ue("vps_num_ticks_poc_diff_one_minus1", 0, kMaxUe);
    v.vps_num_hrd_parameters =
        static_cast<int>(r.ue("vps_num_hrd_parameters", 0, static_cast<uint32_t>(num_layer_sets_minus1 + 1)));
    for (int i = 0; i < v.vps_num_hrd_parameters; ++i) {
      r.ue(Name("hrd_layer_set_idx", i), base_layer_internal ? 0 : 1, static_cast<uint32_t>(num_layer_sets_minus1));
      bool cprms_present = true;
      if (i > 0) cprms_present = r.flag(Name("cprms_present_flag", i));
      parse_hrd_parameters(r, cprms_present, v.vps_max_sub_layers_minus1);
    }
  }
  if (r.flag("vps_extension_flag")) skip_extension_data(r);
  r.rbsp_trailing_bits();
  return v;
}

// 7.3.2.2 seq_parameter_set_rbsp() (7.3.2.2.1 in v2+)
Sps parse_sps(BitReader& r) {
  Sps s;
  s.sps_video_parameter_set_id = static_cast<int>(r.u(4, "sps_video_parameter_set_id"));
  s.sps_max_sub_layers_minus1 = static_cast<int>(r.u_range(3, "sps_max_sub_layers_minus1", 0, kMaxSubLayers - 1));
  s.sps_temporal_id_nesting_flag = r.flag("sps_temporal_id_nesting_flag");
  s.ptl = parse_profile_tier_level(r, s.sps_max_sub_layers_minus1);
  s.sps_seq_parameter_set_id = static_cast<int>(r.ue("sps_seq_parameter_set_id", 0, kMaxSpsId));
  s.chroma_format_idc = static_cast<int>(r.ue("chroma_format_idc", 0, 3));
  if (s.chroma_format_idc == 3) s.separate_colour_plane_flag = r.flag("separate_colour_plane_flag");
  if (s.chroma_format_idc > 1) {
    unsupported(r, "chroma_format_idc " + std::to_string(s.chroma_format_idc) +
                       " (4:2:2 / 4:4:4): only 4:2:0 and 4:0:0 are supported");
  }
  s.pic_width_in_luma_samples = static_cast<int>(r.ue("pic_width_in_luma_samples", 1, kMaxPicWidth));
  s.pic_height_in_luma_samples = static_cast<int>(r.ue("pic_height_in_luma_samples", 1, kMaxPicWidth));
  if (static_cast<int64_t>(s.pic_width_in_luma_samples) * s.pic_height_in_luma_samples > kMaxLumaPs) {
    r.fail(ErrorKind::InvalidValue, "picture of " + std::to_string(s.pic_width_in_luma_samples) + "x" +
                                        std::to_string(s.pic_height_in_luma_samples) +
                                        " luma samples exceeds the level 6.2 limit");
  }
  s.ChromaArrayType = s.separate_colour_plane_flag ? 0 : s.chroma_format_idc;
  s.SubWidthC = s.chroma_format_idc == 1 ? 2 : 1;
  s.SubHeightC = s.chroma_format_idc == 1 ? 2 : 1;
  s.conformance_window_flag = r.flag("conformance_window_flag");
  if (s.conformance_window_flag) {
    const auto w = static_cast<uint32_t>(s.pic_width_in_luma_samples);
    const auto h = static_cast<uint32_t>(s.pic_height_in_luma_samples);
    s.conf_win_left_offset = static_cast<int>(r.ue("conf_win_left_offset", 0, w));
    s.conf_win_right_offset = static_cast<int>(r.ue("conf_win_right_offset", 0, w));
    s.conf_win_top_offset = static_cast<int>(r.ue("conf_win_top_offset", 0, h));
    s.conf_win_bottom_offset = static_cast<int>(r.ue("conf_win_bottom_offset", 0, h));
    if (s.SubWidthC * (s.conf_win_left_offset + s.conf_win_right_offset) >= s.pic_width_in_luma_samples ||
        s.SubHeightC * (s.conf_win_top_offset + s.conf_win_bottom_offset) >= s.pic_height_in_luma_samples) {
      r.fail(ErrorKind::InvalidValue, "conformance window leaves no picture");
    }
  }
  s.cropped_width = s.pic_width_in_luma_samples - s.SubWidthC * (s.conf_win_left_offset + s.conf_win_right_offset);
  s.cropped_height =
      s.pic_height_in_luma_samples - s.SubHeightC * (s.conf_win_top_offset + s.conf_win_bottom_offset);
  s.bit_depth_luma_minus8 = static_cast<int>(r.ue("bit_depth_luma_minus8", 0, 8));
  s.bit_depth_chroma_minus8 = static_cast<int>(r.ue("bit_depth_chroma_minus8", 0, 8));
  if (s.bit_depth_luma_minus8 > 2 || s.bit_depth_chroma_minus8 > 2) {
    unsupported(r, "bit depth " + std::to_string(8 + std::max(s.bit_depth_luma_minus8, s.bit_depth_chroma_minus8)) +
                       ": only 8 to 10 bits (Main, Main10) are supported");
  }
  s.BitDepthY = 8 + s.bit_depth_luma_minus8;
  s.BitDepthC = 8 + s.bit_depth_chroma_minus8;
  s.QpBdOffsetY = 6 * s.bit_depth_luma_minus8;
  s.QpBdOffsetC = 6 * s.bit_depth_chroma_minus8;
  s.log2_max_pic_order_cnt_lsb_minus4 = static_cast<int>(r.ue("log2_max_pic_order_cnt_lsb_minus4", 0, 12));
  s.MaxPicOrderCntLsb = 1 << (s.log2_max_pic_order_cnt_lsb_minus4 + 4);
  const bool ordering_present = r.flag("sps_sub_layer_ordering_info_present_flag");
  for (int i = ordering_present ? 0 : s.sps_max_sub_layers_minus1; i <= s.sps_max_sub_layers_minus1; ++i) {
    s.sps_max_dec_pic_buffering_minus1[i] =
        static_cast<int>(r.ue(Name("sps_max_dec_pic_buffering_minus1", i), 0, kMaxDpbSize - 1));
    s.sps_max_num_reorder_pics[i] = static_cast<int>(
        r.ue(Name("sps_max_num_reorder_pics", i), 0, static_cast<uint32_t>(s.sps_max_dec_pic_buffering_minus1[i])));
    s.sps_max_latency_increase_plus1[i] = r.ue(Name("sps_max_latency_increase_plus1", i), 0, kMaxUe);
  }
  if (!ordering_present) {
    for (int i = 0; i < s.sps_max_sub_layers_minus1; ++i) {
      s.sps_max_dec_pic_buffering_minus1[i] = s.sps_max_dec_pic_buffering_minus1[s.sps_max_sub_layers_minus1];
      s.sps_max_num_reorder_pics[i] = s.sps_max_num_reorder_pics[s.sps_max_sub_layers_minus1];
      s.sps_max_latency_increase_plus1[i] = s.sps_max_latency_increase_plus1[s.sps_max_sub_layers_minus1];
    }
  }
  s.log2_min_luma_coding_block_size_minus3 = static_cast<int>(r.ue("log2_min_luma_coding_block_size_minus3", 0, 3));
  s.log2_diff_max_min_luma_coding_block_size =
      static_cast<int>(r.ue("log2_diff_max_min_luma_coding_block_size", 0, 3));
  s.MinCbLog2SizeY = s.log2_min_luma_coding_block_size_minus3 + 3;  // (7-10)
  s.CtbLog2SizeY = s.MinCbLog2SizeY + s.log2_diff_max_min_luma_coding_block_size;  // (7-11)
  if (s.CtbLog2SizeY < 4 || s.CtbLog2SizeY > 6) {
    r.fail(ErrorKind::InvalidValue, "CtbLog2SizeY = " + std::to_string(s.CtbLog2SizeY) + " outside [4, 6]");
  }
  s.MinCbSizeY = 1 << s.MinCbLog2SizeY;
  s.CtbSizeY = 1 << s.CtbLog2SizeY;
  if (s.pic_width_in_luma_samples % s.MinCbSizeY != 0 || s.pic_height_in_luma_samples % s.MinCbSizeY != 0) {
    r.fail(ErrorKind::InvalidValue, "picture size is not a multiple of MinCbSizeY = " + std::to_string(s.MinCbSizeY));
  }
  s.PicWidthInMinCbsY = s.pic_width_in_luma_samples / s.MinCbSizeY;
  s.PicHeightInMinCbsY = s.pic_height_in_luma_samples / s.MinCbSizeY;
  s.PicWidthInCtbsY = (s.pic_width_in_luma_samples + s.CtbSizeY - 1) / s.CtbSizeY;
  s.PicHeightInCtbsY = (s.pic_height_in_luma_samples + s.CtbSizeY - 1) / s.CtbSizeY;
  s.PicSizeInCtbsY = s.PicWidthInCtbsY * s.PicHeightInCtbsY;
  s.log2_min_luma_transform_block_size_minus2 = static_cast<int>(
      r.ue("log2_min_luma_transform_block_size_minus2", 0, static_cast<uint32_t>(s.MinCbLog2SizeY - 3)));
  s.MinTbLog2SizeY = s.log2_min_luma_transform_block_size_minus2 + 2;
  s.log2_diff_max_min_luma_transform_block_size =
      static_cast<int>(r.ue("log2_diff_max_min_luma_transform_block_size", 0,
                            static_cast<uint32_t>(std::min(s.CtbLog2SizeY, 5) - s.MinTbLog2SizeY)));
  s.MaxTbLog2SizeY = s.MinTbLog2SizeY + s.log2_diff_max_min_luma_transform_block_size;
  const auto max_depth = static_cast<uint32_t>(s.CtbLog2SizeY - s.MinTbLog2SizeY);
  s.max_transform_hierarchy_depth_inter = static_cast<int>(r.ue("max_transform_hierarchy_depth_inter", 0, max_depth));
  s.max_transform_hierarchy_depth_intra = static_cast<int>(r.ue("max_transform_hierarchy_depth_intra", 0, max_depth));
  s.scaling_list_enabled_flag = r.flag("scaling_list_enabled_flag");
  if (s.scaling_list_enabled_flag) {
    s.sps_scaling_list_data_present_flag = r.flag("sps_scaling_list_data_present_flag");
    if (s.sps_scaling_list_data_present_flag) parse_scaling_list_data(r);
  }
  s.amp_enabled_flag = r.flag("amp_enabled_flag");
  s.sample_adaptive_offset_enabled_flag = r.flag("sample_adaptive_offset_enabled_flag");
  s.pcm_enabled_flag = r.flag("pcm_enabled_flag");
  if (s.pcm_enabled_flag) {
    s.pcm_sample_bit_depth_luma_minus1 = static_cast<int>(
        r.u_range(4, "pcm_sample_bit_depth_luma_minus1", 0, static_cast<uint32_t>(s.BitDepthY - 1)));
    s.pcm_sample_bit_depth_chroma_minus1 = static_cast<int>(
        r.u_range(4, "pcm_sample_bit_depth_chroma_minus1", 0, static_cast<uint32_t>(s.BitDepthC - 1)));
    const int lo = std::min(s.MinCbLog2SizeY, 5) - 3;
    const int hi = std::min(s.CtbLog2SizeY, 5) - 3;
    s.log2_min_pcm_luma_coding_block_size_minus3 = static_cast<int>(r.ue(
        "log2_min_pcm_luma_coding_block_size_minus3", static_cast<uint32_t>(lo), static_cast<uint32_t>(hi)));
    s.Log2MinIpcmCbSizeY = s.log2_min_pcm_luma_coding_block_size_minus3 + 3;
    s.log2_diff_max_min_pcm_luma_coding_block_size =
        static_cast<int>(r.ue("log2_diff_max_min_pcm_luma_coding_block_size", 0,
                              static_cast<uint32_t>(std::min(s.CtbLog2SizeY, 5) - s.Log2MinIpcmCbSizeY)));
    s.Log2MaxIpcmCbSizeY = s.Log2MinIpcmCbSizeY + s.log2_diff_max_min_pcm_luma_coding_block_size;
    s.pcm_loop_filter_disabled_flag = r.flag("pcm_loop_filter_disabled_flag");
  }
  s.num_short_term_ref_pic_sets =
      static_cast<int>(r.ue("num_short_term_ref_pic_sets", 0, static_cast<uint32_t>(kMaxShortTermRpsInSps)));
  s.st_rps.reserve(static_cast<size_t>(s.num_short_term_ref_pic_sets));
  for (int i = 0; i < s.num_short_term_ref_pic_sets; ++i) {
    s.st_rps.push_back(
        parse_st_ref_pic_set(r, i, s.st_rps, s.num_short_term_ref_pic_sets, s.max_dec_pic_buffering_minus1()));
  }
  s.long_term_ref_pics_present_flag = r.flag("long_term_ref_pics_present_flag");
  if (s.long_term_ref_pics_present_flag) {
    s.num_long_term_ref_pics_sps =
        static_cast<int>(r.ue("num_long_term_ref_pics_sps", 0, static_cast<uint32_t>(kMaxLongTermRefPicsSps)));
    for (int i = 0; i < s.num_long_term_ref_pics_sps; ++i) {
      s.lt_ref_pic_poc_lsb_sps[i] =
          r.u(static_cast<unsigned>(s.log2_max_pic_order_cnt_lsb_minus4 + 4), Name("lt_ref_pic_poc_lsb_sps", i));
      s.used_by_curr_pic_lt_sps_flag[i] = r.flag(Name("used_by_curr_pic_lt_sps_flag", i));
    }
  }
  s.sps_temporal_mvp_enabled_flag = r.flag("sps_temporal_mvp_enabled_flag");
  s.strong_intra_smoothing_enabled_flag = r.flag("strong_intra_smoothing_enabled_flag");
  s.vui_parameters_present_flag = r.flag("vui_parameters_present_flag");
  if (s.vui_parameters_present_flag) s.vui = parse_vui(r, s);
  s.sps_extension_present_flag = r.flag("sps_extension_present_flag");
  if (s.sps_extension_present_flag) {
    s.sps_range_extension_flag = r.flag("sps_range_extension_flag");
    const bool multilayer = r.flag("sps_multilayer_extension_flag");
    const bool ext_3d = r.flag("sps_3d_extension_flag");
    const bool scc = r.flag("sps_scc_extension_flag");
    const uint32_t extension_4bits = r.u(4, "sps_extension_4bits");
    if (s.sps_range_extension_flag) {
      // 7.3.2.2.2 sps_range_extension()
      s.transform_skip_rotation_enabled_flag = r.flag("transform_skip_rotation_enabled_flag");
      s.transform_skip_context_enabled_flag = r.flag("transform_skip_context_enabled_flag");
      s.implicit_rdpcm_enabled_flag = r.flag("implicit_rdpcm_enabled_flag");
      s.explicit_rdpcm_enabled_flag = r.flag("explicit_rdpcm_enabled_flag");
      s.extended_precision_processing_flag = r.flag("extended_precision_processing_flag");
      s.intra_smoothing_disabled_flag = r.flag("intra_smoothing_disabled_flag");
      s.high_precision_offsets_enabled_flag = r.flag("high_precision_offsets_enabled_flag");
      s.persistent_rice_adaptation_enabled_flag = r.flag("persistent_rice_adaptation_enabled_flag");
      s.cabac_bypass_alignment_enabled_flag = r.flag("cabac_bypass_alignment_enabled_flag");
    }
    if (multilayer) unsupported(r, "sps_multilayer_extension (MV-HEVC / SHVC) is not supported");
    if (ext_3d) unsupported(r, "sps_3d_extension (3D-HEVC) is not supported");
    if (scc) unsupported(r, "sps_scc_extension (screen content coding) is not supported");
    if (extension_4bits != 0) skip_extension_data(r);
  }
  r.rbsp_trailing_bits();
  return s;
}

// 7.3.2.3 pic_parameter_set_rbsp() (7.3.2.3.1 in v2+)
Pps parse_pps(BitReader& r, const std::array<std::shared_ptr<const Sps>, kMaxSpsId + 1>& sps_by_id) {
  Pps p;
  p.pps_pic_parameter_set_id = static_cast<int>(r.ue("pps_pic_parameter_set_id", 0, kMaxPpsId));
  p.pps_seq_parameter_set_id = static_cast<int>(r.ue("pps_seq_parameter_set_id", 0, kMaxSpsId));
  const Sps* sps = sps_by_id[static_cast<size_t>(p.pps_seq_parameter_set_id)].get();
  if (sps == nullptr) {
    r.fail(ErrorKind::MissingParameterSet, "PPS " + std::to_string(p.pps_pic_parameter_set_id) + " refers to SPS " +
                                               std::to_string(p.pps_seq_parameter_set_id) + ", never received");
  }
  p.dependent_slice_segments_enabled_flag = r.flag("dependent_slice_segments_enabled_flag");
  p.output_flag_present_flag = r.flag("output_flag_present_flag");
  p.num_extra_slice_header_bits = static_cast<int>(r.u(3, "num_extra_slice_header_bits"));
  p.sign_data_hiding_enabled_flag = r.flag("sign_data_hiding_enabled_flag");
  p.cabac_init_present_flag = r.flag("cabac_init_present_flag");
  p.num_ref_idx_l0_default_active_minus1 = static_cast<int>(r.ue("num_ref_idx_l0_default_active_minus1", 0, 14));
  p.num_ref_idx_l1_default_active_minus1 = static_cast<int>(r.ue("num_ref_idx_l1_default_active_minus1", 0, 14));
  p.init_qp_minus26 = r.se("init_qp_minus26", -(26 + sps->QpBdOffsetY), 25);
  p.constrained_intra_pred_flag = r.flag("constrained_intra_pred_flag");
  p.transform_skip_enabled_flag = r.flag("transform_skip_enabled_flag");
  p.cu_qp_delta_enabled_flag = r.flag("cu_qp_delta_enabled_flag");
  if (p.cu_qp_delta_enabled_flag) {
    p.diff_cu_qp_delta_depth = static_cast<int>(
        r.ue("diff_cu_qp_delta_depth", 0, static_cast<uint32_t>(sps->log2_diff_max_min_luma_coding_block_size)));
  }
  p.pps_cb_qp_offset = r.se("pps_cb_qp_offset", -12, 12);
  p.pps_cr_qp_offset = r.se("pps_cr_qp_offset", -12, 12);
  p.pps_slice_chroma_qp_offsets_present_flag = r.flag("pps_slice_chroma_qp_offsets_present_flag");
  p.weighted_pred_flag = r.flag("weighted_pred_flag");
  p.weighted_bipred_flag = r.flag("weighted_bipred_flag");
  p.transquant_bypass_enabled_flag = r.flag("transquant_bypass_enabled_flag");
  p.tiles_enabled_flag = r.flag("tiles_enabled_flag");
  p.entropy_coding_sync_enabled_flag = r.flag("entropy_coding_sync_enabled_flag");
  if (p.tiles_enabled_flag) {
    p.num_tile_columns_minus1 =
        static_cast<int>(r.ue("num_tile_columns_minus1", 0, static_cast<uint32_t>(sps->PicWidthInCtbsY - 1)));
    p.num_tile_rows_minus1 =
        static_cast<int>(r.ue("num_tile_rows_minus1", 0, static_cast<uint32_t>(sps->PicHeightInCtbsY - 1)));
    p.uniform_spacing_flag = r.flag("uniform_spacing_flag");
    if (!p.uniform_spacing_flag) {
      int64_t used = 0;  // CTB columns / rows taken by all but the last tile column / row
      for (int i = 0; i < p.num_tile_columns_minus1; ++i) {
        const auto w = static_cast<int>(
            r.ue(Name("column_width_minus1", i), 0, static_cast<uint32_t>(sps->PicWidthInCtbsY - 1)));
        p.column_width_minus1.push_back(w);
        used += w + 1;
      }
      if (used >= sps->PicWidthInCtbsY) r.fail(ErrorKind::InvalidValue, "tile columns are wider than the picture");
      used = 0;
      for (int i = 0; i < p.num_tile_rows_minus1; ++i) {
        const auto h = static_cast<int>(
            r.ue(Name("row_height_minus1", i), 0, static_cast<uint32_t>(sps->PicHeightInCtbsY - 1)));
        p.row_height_minus1.push_back(h);
        used += h + 1;
      }
      if (used >= sps->PicHeightInCtbsY) r.fail(ErrorKind::InvalidValue, "tile rows are taller than the picture");
    }
    p.loop_filter_across_tiles_enabled_flag = r.flag("loop_filter_across_tiles_enabled_flag");
  }
  p.pps_loop_filter_across_slices_enabled_flag = r.flag("pps_loop_filter_across_slices_enabled_flag");
  p.deblocking_filter_control_present_flag = r.flag("deblocking_filter_control_present_flag");
  if (p.deblocking_filter_control_present_flag) {
    p.deblocking_filter_override_enabled_flag = r.flag("deblocking_filter_override_enabled_flag");
    p.pps_deblocking_filter_disabled_flag = r.flag("pps_deblocking_filter_disabled_flag");
    if (!p.pps_deblocking_filter_disabled_flag) {
      p.pps_beta_offset_div2 = r.se("pps_beta_offset_div2", -6, 6);
      p.pps_tc_offset_div2 = r.se("pps_tc_offset_div2", -6, 6);
    }
  }
  p.pps_scaling_list_data_present_flag = r.flag("pps_scaling_list_data_present_flag");
  if (p.pps_scaling_list_data_present_flag) parse_scaling_list_data(r);
  p.lists_modification_present_flag = r.flag("lists_modification_present_flag");
  p.log2_parallel_merge_level_minus2 =
      static_cast<int>(r.ue("log2_parallel_merge_level_minus2", 0, static_cast<uint32_t>(sps->CtbLog2SizeY - 2)));
  p.Log2ParMrgLevel = p.log2_parallel_merge_level_minus2 + 2;
  p.slice_segment_header_extension_present_flag = r.flag("slice_segment_header_extension_present_flag");
  p.pps_extension_present_flag = r.flag("pps_extension_present_flag");
  if (p.pps_extension_present_flag) {
    p.pps_range_extension_flag = r.flag("pps_range_extension_flag");
    const bool multilayer = r.flag("pps_multilayer_extension_flag");
    const bool ext_3d = r.flag("pps_3d_extension_flag");
    const bool scc = r.flag("pps_scc_extension_flag");
    const uint32_t extension_4bits = r.u(4, "pps_extension_4bits");
    if (p.pps_range_extension_flag) {
      // 7.3.2.3.2 pps_range_extension()
      if (p.transform_skip_enabled_flag) {
        p.log2_max_transform_skip_block_size_minus2 = static_cast<int>(
            r.ue("log2_max_transform_skip_block_size_minus2", 0, static_cast<uint32_t>(sps->MaxTbLog2SizeY - 2)));
      }
      p.cross_component_prediction_enabled_flag = r.flag("cross_component_prediction_enabled_flag");
      p.chroma_qp_offset_list_enabled_flag = r.flag("chroma_qp_offset_list_enabled_flag");
      if (p.chroma_qp_offset_list_enabled_flag) {
        p.diff_cu_chroma_qp_offset_depth = static_cast<int>(r.ue(
            "diff_cu_chroma_qp_offset_depth", 0, static_cast<uint32_t>(sps->log2_diff_max_min_luma_coding_block_size)));
        p.chroma_qp_offset_list_len_minus1 = static_cast<int>(r.ue("chroma_qp_offset_list_len_minus1", 0, 5));
        for (int i = 0; i <= p.chroma_qp_offset_list_len_minus1; ++i) {
          p.cb_qp_offset_list[i] = r.se(Name("cb_qp_offset_list", i), -12, 12);
          p.cr_qp_offset_list[i] = r.se(Name("cr_qp_offset_list", i), -12, 12);
        }
      }
      p.log2_sao_offset_scale_luma = static_cast<int>(
          r.ue("log2_sao_offset_scale_luma", 0, static_cast<uint32_t>(std::max(0, sps->BitDepthY - 10))));
      p.log2_sao_offset_scale_chroma = static_cast<int>(
          r.ue("log2_sao_offset_scale_chroma", 0, static_cast<uint32_t>(std::max(0, sps->BitDepthC - 10))));
    }
    if (multilayer) unsupported(r, "pps_multilayer_extension (MV-HEVC / SHVC) is not supported");
    if (ext_3d) unsupported(r, "pps_3d_extension (3D-HEVC) is not supported");
    if (scc) unsupported(r, "pps_scc_extension (screen content coding) is not supported");
    if (extension_4bits != 0) skip_extension_data(r);
  }
  r.rbsp_trailing_bits();
  return p;
}

// 6.5.1 CTB raster and tile scanning conversion, 6.5.2 z-scan order array initialisation.
CtbLayout build_ctb_layout(const Sps& sps, const Pps& pps) {
  CtbLayout L;
  L.PicWidthInCtbsY = sps.PicWidthInCtbsY;
  L.PicHeightInCtbsY = sps.PicHeightInCtbsY;
  L.PicSizeInCtbsY = sps.PicSizeInCtbsY;
  L.CtbLog2SizeY = sps.CtbLog2SizeY;
  L.MinTbLog2SizeY = sps.MinTbLog2SizeY;
  const int cols = pps.num_tile_columns_minus1 + 1;
  const int rows = pps.num_tile_rows_minus1 + 1;
  const int W = L.PicWidthInCtbsY;
  const int H = L.PicHeightInCtbsY;
  if (cols > W || rows > H) {
    throw ParseError(ErrorKind::InvalidValue, "PPS " + std::to_string(pps.pps_pic_parameter_set_id) + " has " +
                                                  std::to_string(cols) + "x" + std::to_string(rows) +
                                                  " tiles, more than the picture's CTB columns/rows");
  }
  L.colWidth.assign(static_cast<size_t>(cols), 0);
  L.rowHeight.assign(static_cast<size_t>(rows), 0);
  if (pps.uniform_spacing_flag) {
    for (int i = 0; i < cols; ++i) L.colWidth[i] = ((i + 1) * W) / cols - (i * W) / cols;  // (6-3)
    for (int j = 0; j < rows; ++j) L.rowHeight[j] = ((j + 1) * H) / rows - (j * H) / rows;  // (6-4)
  } else {
    int left = W;
    for (int i = 0; i < cols - 1; ++i) {
      L.colWidth[i] = pps.column_width_minus1[static_cast<size_t>(i)] + 1;
      left -= L.colWidth[i];
    }
    int left_rows = H;
    for (int j = 0; j < rows - 1; ++j) {
      L.rowHeight[j] = pps.row_height_minus1[static_cast<size_t>(j)] + 1;
      left_rows -= L.rowHeight[j];
    }
    if (left < 1 || left_rows < 1) {
      throw ParseError(ErrorKind::InvalidValue, "PPS " + std::to_string(pps.pps_pic_parameter_set_id) +
                                                    " tile sizes do not fit the picture");
    }
    L.colWidth[static_cast<size_t>(cols - 1)] = left;
    L.rowHeight[static_cast<size_t>(rows - 1)] = left_rows;
  }
  L.colBd.assign(static_cast<size_t>(cols + 1), 0);
  L.rowBd.assign(static_cast<size_t>(rows + 1), 0);
  for (int i = 0; i < cols; ++i) L.colBd[i + 1] = L.colBd[i] + L.colWidth[i];  // (6-5)
  for (int j = 0; j < rows; ++j) L.rowBd[j + 1] = L.rowBd[j] + L.rowHeight[j];  // (6-6)

  const auto n = static_cast<size_t>(L.PicSizeInCtbsY);
  L.CtbAddrRsToTs.assign(n, 0);
  L.CtbAddrTsToRs.assign(n, 0);
  L.TileId.assign(n, 0);
  for (int rs = 0; rs < L.PicSizeInCtbsY; ++rs) {  // (6-7)
    const int tb_x = rs % W;
    const int tb_y = rs / W;
    int tile_x = 0;
    int tile_y = 0;
    for (int i = 0; i < cols; ++i) {
      if (tb_x >= L.colBd[i]) tile_x = i;
    }
    for (int j = 0; j < rows; ++j) {
      if (tb_y >= L.rowBd[j]) tile_y = j;
    }
    int ts = 0;
    for (int i = 0; i < tile_x; ++i) ts += L.rowHeight[tile_y] * L.colWidth[i];
    for (int j = 0; j < tile_y; ++j) ts += W * L.rowHeight[j];
    ts += (tb_y - L.rowBd[tile_y]) * L.colWidth[tile_x] + tb_x - L.colBd[tile_x];
    L.CtbAddrRsToTs[static_cast<size_t>(rs)] = ts;
    L.CtbAddrTsToRs[static_cast<size_t>(ts)] = rs;  // (6-8)
  }
  int tile_idx = 0;  // (6-9)
  for (int j = 0; j < rows; ++j) {
    for (int i = 0; i < cols; ++i, ++tile_idx) {
      for (int y = L.rowBd[j]; y < L.rowBd[j + 1]; ++y) {
        for (int x = L.colBd[i]; x < L.colBd[i + 1]; ++x) {
          L.TileId[static_cast<size_t>(L.CtbAddrRsToTs[static_cast<size_t>(y * W + x)])] = tile_idx;
        }
      }
    }
  }

  const int shift = L.CtbLog2SizeY - L.MinTbLog2SizeY;
  L.min_tb_width = W << shift;
  L.min_tb_height = H << shift;
  L.MinTbAddrZs.assign(static_cast<size_t>(L.min_tb_width) * static_cast<size_t>(L.min_tb_height), 0);
  for (int y = 0; y < L.min_tb_height; ++y) {  // (6-10)
    for (int x = 0; x < L.min_tb_width; ++x) {
      const int tb_x = (x << L.MinTbLog2SizeY) >> L.CtbLog2SizeY;
      const int tb_y = (y << L.MinTbLog2SizeY) >> L.CtbLog2SizeY;
      const int ctb_addr_rs = W * tb_y + tb_x;
      int32_t v = L.CtbAddrRsToTs[static_cast<size_t>(ctb_addr_rs)] << (shift * 2);
      for (int i = 0; i < shift; ++i) {
        const int m = 1 << i;
        v += ((m & x) != 0 ? m * m : 0) + ((m & y) != 0 ? 2 * m * m : 0);
      }
      L.MinTbAddrZs[static_cast<size_t>(y) * static_cast<size_t>(L.min_tb_width) + static_cast<size_t>(x)] = v;
    }
  }
  return L;
}

}  // namespace arseg::hevc
