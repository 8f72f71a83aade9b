#include "slice_header.hpp"

#include <algorithm>
#include <string>

namespace arseg::hevc {

namespace {

// Floor(v / 2^s), i.e. the arithmetic right shift of the spec (5.7) without shifting negative values.
int64_t asr(int64_t v, int s) {
  const int64_t d = int64_t{1} << s;
  return v >= 0 ? v / d : -((-v + d - 1) / d);
}

int64_t clip3(int64_t lo, int64_t hi, int64_t v) { return v < lo ? lo : (v > hi ? hi : v); }

// 7.3.6.2 ref_pic_lists_modification()
void parse_ref_pic_lists_modification(BitReader& r, SliceHeader& h) {
  const unsigned bits = ceil_log2(static_cast<uint64_t>(h.NumPicTotalCurr));
  const auto max_entry = static_cast<uint32_t>(h.NumPicTotalCurr - 1);
  h.ref_pic_list_modification_flag_l0 = r.flag("ref_pic_list_modification_flag_l0");
  if (h.ref_pic_list_modification_flag_l0) {
    for (int i = 0; i <= h.num_ref_idx_l0_active_minus1; ++i) {
      h.list_entry_l0[i] = static_cast<int>(r.u_range(bits, Name("list_entry_l0", i), 0, max_entry));
    }
  }
  if (h.slice_type == kSliceB) {
    h.ref_pic_list_modification_flag_l1 = r.flag("ref_pic_list_modification_flag_l1");
    if (h.ref_pic_list_modification_flag_l1) {
      for (int i = 0; i <= h.num_ref_idx_l1_active_minus1; ++i) {
        h.list_entry_l1[i] = static_cast<int>(r.u_range(bits, Name("list_entry_l1", i), 0, max_entry));
      }
    }
  }
}

// 7.3.6.3 pred_weight_table(), derivations of 7.4.7.3.
void parse_pred_weight_table(BitReader& r, const Sps& sps, SliceHeader& h) {
  PredWeightTable& w = h.pwt;
  w.luma_log2_weight_denom = static_cast<int>(r.ue("luma_log2_weight_denom", 0, 7));
  w.ChromaLog2WeightDenom = w.luma_log2_weight_denom;
  const bool chroma = sps.ChromaArrayType != 0;
  if (chroma) {
    w.ChromaLog2WeightDenom += r.se("delta_chroma_log2_weight_denom", -w.luma_log2_weight_denom,
                                    7 - w.luma_log2_weight_denom);
  }
  const int half_y = 1 << (sps.high_precision_offsets_enabled_flag ? sps.BitDepthY - 1 : 7);  // WpOffsetHalfRangeY
  const int half_c = 1 << (sps.high_precision_offsets_enabled_flag ? sps.BitDepthC - 1 : 7);  // WpOffsetHalfRangeC
  static const char* const kLumaFlag[2] = {"luma_weight_l0_flag", "luma_weight_l1_flag"};
  static const char* const kChromaFlag[2] = {"chroma_weight_l0_flag", "chroma_weight_l1_flag"};
  static const char* const kDeltaLuma[2] = {"delta_luma_weight_l0", "delta_luma_weight_l1"};
  static const char* const kLumaOffset[2] = {"luma_offset_l0", "luma_offset_l1"};
  static const char* const kDeltaChroma[2] = {"delta_chroma_weight_l0", "delta_chroma_weight_l1"};
  // FFmpeg's CBS names delta_chroma_offset_lX "chroma_offset_lX"; the trace uses its names.
  static const char* const kChromaOffset[2] = {"chroma_offset_l0", "chroma_offset_l1"};
  for (int list = 0; list < (h.slice_type == kSliceB ? 2 : 1); ++list) {
    const int n = h.num_ref_idx_active(list);
    for (int i = 0; i < n; ++i) w.luma_weight_flag[list][i] = r.flag(Name(kLumaFlag[list], i));
    if (chroma) {
      for (int i = 0; i < n; ++i) w.chroma_weight_flag[list][i] = r.flag(Name(kChromaFlag[list], i));
    }
    for (int i = 0; i < n; ++i) {
      w.LumaWeight[list][i] = 1 << w.luma_log2_weight_denom;
      if (w.luma_weight_flag[list][i]) {
        w.LumaWeight[list][i] += r.se(Name(kDeltaLuma[list], i), -128, 127);
        w.luma_offset[list][i] = r.se(Name(kLumaOffset[list], i), -half_y, half_y - 1);
      }
      for (int j = 0; j < 2; ++j) w.ChromaWeight[list][i][j] = 1 << w.ChromaLog2WeightDenom;
      if (w.chroma_weight_flag[list][i]) {
        for (int j = 0; j < 2; ++j) {
          w.ChromaWeight[list][i][j] += r.se(Name(kDeltaChroma[list], i, j), -128, 127);
          const int delta_offset = r.se(Name(kChromaOffset[list], i, j), -4 * half_c, 4 * half_c - 1);
          const int64_t pred = half_c - asr(int64_t{half_c} * w.ChromaWeight[list][i][j], w.ChromaLog2WeightDenom);
          w.ChromaOffset[list][i][j] = static_cast<int>(clip3(-half_c, half_c - 1, pred + delta_offset));  // (7-56)
        }
      }
    }
  }
}

}  // namespace

SliceHeaderPrefix peek_slice_header(const uint8_t* rbsp, size_t size) {
  BitReader r(rbsp, size);
  const NalHeader nal = parse_nal_unit_header(r);
  SliceHeaderPrefix p;
  p.first_slice_segment_in_pic_flag = r.flag("first_slice_segment_in_pic_flag");
  if (is_irap(nal.nal_unit_type)) r.flag("no_output_of_prior_pics_flag");
  p.slice_pic_parameter_set_id = static_cast<int>(r.ue("slice_pic_parameter_set_id", 0, kMaxPpsId));
  return p;
}

// 7.3.6.1 slice_segment_header()
SliceHeader parse_slice_header(BitReader& r, const NalHeader& nal, const Sps& sps, const Pps& pps,
                               const SliceHeader* independent) {
  SliceHeader h;
  h.nal = nal;
  h.first_slice_segment_in_pic_flag = r.flag("first_slice_segment_in_pic_flag");
  const bool irap = is_irap(nal.nal_unit_type);
  if (irap) h.no_output_of_prior_pics_flag = r.flag("no_output_of_prior_pics_flag");
  h.slice_pic_parameter_set_id = static_cast<int>(r.ue("slice_pic_parameter_set_id", 0, kMaxPpsId));
  if (!h.first_slice_segment_in_pic_flag) {
    if (pps.dependent_slice_segments_enabled_flag) h.dependent_slice_segment_flag = r.flag("dependent_slice_segment_flag");
    h.slice_segment_address = r.u_range(ceil_log2(static_cast<uint64_t>(sps.PicSizeInCtbsY)), "slice_segment_address",
                                        0, static_cast<uint32_t>(sps.PicSizeInCtbsY - 1));
  }
  if (h.dependent_slice_segment_flag) {
    if (independent == nullptr) {
      r.fail(ErrorKind::InvalidValue, "dependent slice segment without a preceding independent slice segment");
    }
    const SliceHeader own = h;
    h = *independent;
    h.nal = own.nal;
    h.first_slice_segment_in_pic_flag = false;
    h.no_output_of_prior_pics_flag = own.no_output_of_prior_pics_flag;
    h.slice_pic_parameter_set_id = own.slice_pic_parameter_set_id;
    h.dependent_slice_segment_flag = true;
    h.slice_segment_address = own.slice_segment_address;
    h.num_entry_point_offsets = 0;
    h.offset_len_minus1 = 0;
    h.entry_point_offset_minus1.clear();
    h.slice_segment_header_extension_length = 0;
  } else {
    for (int i = 0; i < pps.num_extra_slice_header_bits; ++i) {
      if (r.flag(Name("slice_reserved_flag", i))) h.slice_reserved_flags |= 1U << i;
    }
    h.slice_type = static_cast<int>(r.ue("slice_type", 0, 2));
    if (irap && nal.nuh_layer_id == 0 && h.slice_type != kSliceI) {
      r.fail(ErrorKind::InvalidValue, "slice_type " + std::to_string(h.slice_type) + " in an IRAP picture");
    }
    if (pps.output_flag_present_flag) h.pic_output_flag = r.flag("pic_output_flag");
    if (sps.separate_colour_plane_flag) h.colour_plane_id = static_cast<int>(r.u_range(2, "colour_plane_id", 0, 2));
    if (!is_idr(nal.nal_unit_type)) {
      h.slice_pic_order_cnt_lsb =
          r.u(static_cast<unsigned>(sps.log2_max_pic_order_cnt_lsb_minus4 + 4), "slice_pic_order_cnt_lsb");
      h.short_term_ref_pic_set_sps_flag = r.flag("short_term_ref_pic_set_sps_flag");
      if (!h.short_term_ref_pic_set_sps_flag) {
        const uint64_t start = r.position();
        h.st_rps = parse_st_ref_pic_set(r, sps.num_short_term_ref_pic_sets, sps.st_rps, sps.num_short_term_ref_pic_sets,
                                        sps.max_dec_pic_buffering_minus1());
        h.st_rps_bits = static_cast<int>(r.position() - start);
      } else {
        if (sps.num_short_term_ref_pic_sets == 0) {
          r.fail(ErrorKind::InvalidValue, "short_term_ref_pic_set_sps_flag = 1 but the SPS has no short-term RPS");
        }
        if (sps.num_short_term_ref_pic_sets > 1) {
          h.short_term_ref_pic_set_idx = static_cast<int>(
              r.u_range(ceil_log2(static_cast<uint64_t>(sps.num_short_term_ref_pic_sets)), "short_term_ref_pic_set_idx",
                        0, static_cast<uint32_t>(sps.num_short_term_ref_pic_sets - 1)));
        }
        h.st_rps = sps.st_rps[static_cast<size_t>(h.short_term_ref_pic_set_idx)];
      }
      if (sps.long_term_ref_pics_present_flag) {
        const int room = std::max(0, sps.max_dec_pic_buffering_minus1() - h.st_rps.num_delta_pocs());
        if (sps.num_long_term_ref_pics_sps > 0) {
          h.num_long_term_sps = static_cast<int>(r.ue(
              "num_long_term_sps", 0, static_cast<uint32_t>(std::min(sps.num_long_term_ref_pics_sps, room))));
        }
        h.num_long_term_pics =
            static_cast<int>(r.ue("num_long_term_pics", 0, static_cast<uint32_t>(room - h.num_long_term_sps)));
        const unsigned lsb_bits = static_cast<unsigned>(sps.log2_max_pic_order_cnt_lsb_minus4 + 4);
        for (int i = 0; i < h.num_long_term_sps + h.num_long_term_pics; ++i) {
          if (i < h.num_long_term_sps) {
            int lt_idx_sps = 0;
            if (sps.num_long_term_ref_pics_sps > 1) {
              lt_idx_sps = static_cast<int>(
                  r.u_range(ceil_log2(static_cast<uint64_t>(sps.num_long_term_ref_pics_sps)), Name("lt_idx_sps", i), 0,
                            static_cast<uint32_t>(sps.num_long_term_ref_pics_sps - 1)));
            }
            h.PocLsbLt[i] = sps.lt_ref_pic_poc_lsb_sps[static_cast<size_t>(lt_idx_sps)];
            h.UsedByCurrPicLt[i] = sps.used_by_curr_pic_lt_sps_flag[static_cast<size_t>(lt_idx_sps)];
          } else {
            h.PocLsbLt[i] = r.u(lsb_bits, Name("poc_lsb_lt", i));
            h.UsedByCurrPicLt[i] = r.flag(Name("used_by_curr_pic_lt_flag", i));
          }
          h.delta_poc_msb_present_flag[i] = r.flag(Name("delta_poc_msb_present_flag", i));
          int64_t cycle = 0;
          if (h.delta_poc_msb_present_flag[i]) cycle = r.ue(Name("delta_poc_msb_cycle_lt", i), 0, 0xFFFFFFFEU);
          // (7-52)
          h.DeltaPocMsbCycleLt[i] = (i == 0 || i == h.num_long_term_sps) ? cycle : cycle + h.DeltaPocMsbCycleLt[i - 1];
        }
      }
      if (sps.sps_temporal_mvp_enabled_flag) h.slice_temporal_mvp_enabled_flag = r.flag("slice_temporal_mvp_enabled_flag");
    }
    // (7-55) NumPicTotalCurr
    for (int i = 0; i < h.st_rps.num_negative_pics; ++i) h.NumPicTotalCurr += h.st_rps.used_by_curr_pic_s0[i] ? 1 : 0;
    for (int i = 0; i < h.st_rps.num_positive_pics; ++i) h.NumPicTotalCurr += h.st_rps.used_by_curr_pic_s1[i] ? 1 : 0;
    for (int i = 0; i < h.num_long_term_sps + h.num_long_term_pics; ++i) h.NumPicTotalCurr += h.UsedByCurrPicLt[i] ? 1 : 0;

    if (sps.sample_adaptive_offset_enabled_flag) {
      h.slice_sao_luma_flag = r.flag("slice_sao_luma_flag");
      if (sps.ChromaArrayType != 0) h.slice_sao_chroma_flag = r.flag("slice_sao_chroma_flag");
    }
    if (h.slice_type == kSliceP || h.slice_type == kSliceB) {
      if (h.NumPicTotalCurr == 0) {
        r.fail(ErrorKind::InvalidValue, "P/B slice whose reference picture set has no picture used by the current one");
      }
      h.num_ref_idx_l0_active_minus1 = pps.num_ref_idx_l0_default_active_minus1;
      h.num_ref_idx_l1_active_minus1 = pps.num_ref_idx_l1_default_active_minus1;
      h.num_ref_idx_active_override_flag = r.flag("num_ref_idx_active_override_flag");
      if (h.num_ref_idx_active_override_flag) {
        h.num_ref_idx_l0_active_minus1 = static_cast<int>(r.ue("num_ref_idx_l0_active_minus1", 0, 14));
        if (h.slice_type == kSliceB) h.num_ref_idx_l1_active_minus1 = static_cast<int>(r.ue("num_ref_idx_l1_active_minus1", 0, 14));
      }
      if (pps.lists_modification_present_flag && h.NumPicTotalCurr > 1) parse_ref_pic_lists_modification(r, h);
      if (h.slice_type == kSliceB) h.mvd_l1_zero_flag = r.flag("mvd_l1_zero_flag");
      if (pps.cabac_init_present_flag) h.cabac_init_flag = r.flag("cabac_init_flag");
      if (h.slice_temporal_mvp_enabled_flag) {
        if (h.slice_type == kSliceB) h.collocated_from_l0_flag = r.flag("collocated_from_l0_flag");
        const int active_minus1 = h.collocated_from_l0_flag ? h.num_ref_idx_l0_active_minus1 : h.num_ref_idx_l1_active_minus1;
        if (active_minus1 > 0) {
          h.collocated_ref_idx = static_cast<int>(r.ue("collocated_ref_idx", 0, static_cast<uint32_t>(active_minus1)));
        }
      }
      if ((pps.weighted_pred_flag && h.slice_type == kSliceP) || (pps.weighted_bipred_flag && h.slice_type == kSliceB)) {
        h.has_pred_weight_table = true;
        parse_pred_weight_table(r, sps, h);
      }
      h.five_minus_max_num_merge_cand = static_cast<int>(r.ue("five_minus_max_num_merge_cand", 0, 4));
      h.MaxNumMergeCand = 5 - h.five_minus_max_num_merge_cand;
    }
    const int init_qp = 26 + pps.init_qp_minus26;
    h.slice_qp_delta = r.se("slice_qp_delta", -sps.QpBdOffsetY - init_qp, 51 - init_qp);
    h.SliceQpY = init_qp + h.slice_qp_delta;
    if (pps.pps_slice_chroma_qp_offsets_present_flag) {
      h.slice_cb_qp_offset = r.se("slice_cb_qp_offset", -12 - pps.pps_cb_qp_offset, 12 - pps.pps_cb_qp_offset);
      h.slice_cr_qp_offset = r.se("slice_cr_qp_offset", -12 - pps.pps_cr_qp_offset, 12 - pps.pps_cr_qp_offset);
    }
    if (pps.chroma_qp_offset_list_enabled_flag) h.cu_chroma_qp_offset_enabled_flag = r.flag("cu_chroma_qp_offset_enabled_flag");
    if (pps.deblocking_filter_override_enabled_flag) h.deblocking_filter_override_flag = r.flag("deblocking_filter_override_flag");
    h.slice_deblocking_filter_disabled_flag = pps.pps_deblocking_filter_disabled_flag;
    h.slice_beta_offset_div2 = pps.pps_beta_offset_div2;
    h.slice_tc_offset_div2 = pps.pps_tc_offset_div2;
    if (h.deblocking_filter_override_flag) {
      h.slice_deblocking_filter_disabled_flag = r.flag("slice_deblocking_filter_disabled_flag");
      if (!h.slice_deblocking_filter_disabled_flag) {
        h.slice_beta_offset_div2 = r.se("slice_beta_offset_div2", -6, 6);
        h.slice_tc_offset_div2 = r.se("slice_tc_offset_div2", -6, 6);
      }
    }
    h.slice_loop_filter_across_slices_enabled_flag = pps.pps_loop_filter_across_slices_enabled_flag;
    if (pps.pps_loop_filter_across_slices_enabled_flag &&
        (h.slice_sao_luma_flag || h.slice_sao_chroma_flag || !h.slice_deblocking_filter_disabled_flag)) {
      h.slice_loop_filter_across_slices_enabled_flag = r.flag("slice_loop_filter_across_slices_enabled_flag");
    }
  }
  if (pps.tiles_enabled_flag || pps.entropy_coding_sync_enabled_flag) {
    const int cols = pps.num_tile_columns_minus1 + 1;
    const int rows = pps.num_tile_rows_minus1 + 1;
    int max_offsets = 0;  // 7.4.7.1 num_entry_point_offsets ranges
    if (!pps.tiles_enabled_flag) {
      max_offsets = sps.PicHeightInCtbsY - 1;
    } else if (!pps.entropy_coding_sync_enabled_flag) {
      max_offsets = cols * rows - 1;
    } else {
      max_offsets = cols * sps.PicHeightInCtbsY - 1;
    }
    h.num_entry_point_offsets =
        static_cast<int>(r.ue("num_entry_point_offsets", 0, static_cast<uint32_t>(std::max(0, max_offsets))));
    if (h.num_entry_point_offsets > 0) {
      h.offset_len_minus1 = static_cast<int>(r.ue("offset_len_minus1", 0, 31));
      const auto bits = static_cast<unsigned>(h.offset_len_minus1 + 1);
      if (static_cast<uint64_t>(h.num_entry_point_offsets) * bits > r.bits_left()) {
        r.fail(ErrorKind::Truncated, std::to_string(h.num_entry_point_offsets) + " entry points do not fit the NAL unit");
      }
      h.entry_point_offset_minus1.resize(static_cast<size_t>(h.num_entry_point_offsets));
      for (int i = 0; i < h.num_entry_point_offsets; ++i) {
        h.entry_point_offset_minus1[static_cast<size_t>(i)] = r.u(bits, Name("entry_point_offset_minus1", i));
      }
    }
  }
  if (pps.slice_segment_header_extension_present_flag) {
    h.slice_segment_header_extension_length = static_cast<int>(r.ue("slice_segment_header_extension_length", 0, 256));
    for (int i = 0; i < h.slice_segment_header_extension_length; ++i) {
      r.u(8, Name("slice_segment_header_extension_data_byte", i));
    }
  }
  r.byte_alignment();
  h.slice_data_byte_offset = static_cast<size_t>(r.position() / 8);
  return h;
}

}  // namespace arseg::hevc
