#include "parser.hpp"

#include <string>
#include <utility>

namespace arseg::hevc {

namespace {

const char* header_title(int nal_unit_type) {
  switch (nal_unit_type) {
    case kVps: return "Video Parameter Set";
    case kSps: return "Sequence Parameter Set";
    case kPps: return "Picture Parameter Set";
    default: return "Slice Segment Header";
  }
}

// NAL unit types that end the current picture when they follow its slices (7.4.2.4.4: first NAL units of
// an access unit): AUD, EOS, EOB, parameter sets, prefix SEI, reserved 41..44 and unspecified 48..55.
bool ends_picture(int t) {
  return t == kVps || t == kSps || t == kPps || t == kAud || t == kEos || t == kEob || t == kPrefixSei ||
         (t >= 41 && t <= 44) || (t >= 48 && t <= 55);
}

}  // namespace

StreamParser::StreamParser(ParserOptions options) : options_(options) {}

Location StreamParser::where() const {
  Location w;
  w.nal_index = nal_index_;
  w.picture = picture_index_;
  w.slice = slice_index_;
  return w;
}

void StreamParser::feed(const uint8_t* data, size_t size) {
  splitter_.feed(data, size, [this](const uint8_t* nal, size_t n) { handle_nal(nal, n); });
  raise_pending();
}

void StreamParser::feed_access_unit(const uint8_t* data, size_t size, int length_size) {
  splitter_.finish([this](const uint8_t* nal, size_t n) { handle_nal(nal, n); });
  try {
    const std::vector<ByteRange> nals =
        length_size == 0 ? split_annexb(data, size) : split_length_prefixed(data, size, length_size);
    for (const auto& [offset, n] : nals) handle_nal(data + offset, n);
  } catch (const ParseError& e) {
    ++stats_.errors;
    if (!pending_error_) pending_error_ = e.located(where());
    current_.reset();
    waiting_for_irap_ = true;
    next_irap_no_rasl_ = true;
  }
  finish_picture();
  raise_pending();
}

void StreamParser::flush() {
  splitter_.finish([this](const uint8_t* nal, size_t n) { handle_nal(nal, n); });
  finish_picture();
  waiting_for_irap_ = true;
  next_irap_no_rasl_ = true;
  raise_pending();
}

void StreamParser::raise_pending() {
  if (!pending_error_) return;
  const ParseError e = *pending_error_;
  pending_error_.reset();
  throw e;
}

std::vector<PictureRecord> StreamParser::take_pictures() {
  std::vector<PictureRecord> out(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
  done_.clear();
  return out;
}

std::vector<NalDump> StreamParser::take_dumps() { return std::exchange(dumps_, {}); }

void StreamParser::handle_nal(const uint8_t* data, size_t size) {
  ++nal_index_;
  ++stats_.nal_units;
  try {
    process_nal(data, size);
  } catch (const ParseError& e) {
    ++stats_.errors;
    if (!pending_error_) pending_error_ = e.located(where());
    // Recovery: drop the picture in progress and skip to the next IRAP picture.
    if (current_) {
      current_.reset();
      ++stats_.dropped_pictures;
    }
    current_dpb_.reset();
    last_independent_.reset();
    dropping_picture_ = false;
    picture_index_ = -1;
    waiting_for_irap_ = true;
    next_irap_no_rasl_ = true;
  }
  slice_index_ = -1;
}

void StreamParser::process_nal(const uint8_t* data, size_t size) {
  if (size < 2) throw ParseError(ErrorKind::Truncated, "NAL unit of " + std::to_string(size) + " byte(s)");
  // Layer and type come from the first two bytes, which never contain emulation prevention.
  const int type = (data[0] >> 1) & 0x3F;
  const int layer = ((data[0] & 1) << 5) | (data[1] >> 3);
  if (layer > 0) return;  // enhancement layers (MV-HEVC / SHVC) are ignored
  const bool slice = is_slice_nal(type);
  const bool traced_type = slice || type == kVps || type == kSps || type == kPps;
  if (!slice && !traced_type && !ends_picture(type)) return;  // SEI suffix, filler, reserved: nothing to do
  if (ends_picture(type)) finish_picture();
  if (type == kEos || type == kEob) {
    next_irap_no_rasl_ = true;  // the next picture starts a new CVS (after EOB: a new bitstream)
    return;
  }
  if (!traced_type) return;

  const Rbsp rbsp = unescape_nal(data, size);
  NalDump dump;
  Trace* trace = nullptr;
  if (options_.trace) {
    dump.nal_index = nal_index_;
    dump.nal_unit_type = type;
    dump.temporal_id = (data[1] & 7) - 1;
    dump.title = header_title(type);
    trace = &dump.fields;
  }
  if (slice) {
    process_slice(NalHeader{type, layer, (data[1] & 7)}, rbsp, trace);
  } else {
    BitReader r(rbsp.bytes.data(), rbsp.bytes.size(), trace);
    parse_nal_unit_header(r);
    if (type == kVps) {
      Vps v = parse_vps(r);
      v.rbsp = rbsp.bytes;
      const auto id = static_cast<size_t>(v.vps_video_parameter_set_id);
      if (!vps_[id] || vps_[id]->rbsp != v.rbsp) vps_[id] = std::make_shared<const Vps>(std::move(v));
    } else if (type == kSps) {
      Sps s = parse_sps(r);
      s.rbsp = rbsp.bytes;
      const auto id = static_cast<size_t>(s.sps_seq_parameter_set_id);
      // A re-sent identical SPS keeps its object (and so the active CVS state); new content is stored and
      // becomes active at the next IRAP with NoRaslOutputFlag = 1 (7.4.3.2 activation rules).
      if (!sps_[id] || sps_[id]->rbsp != s.rbsp) sps_[id] = std::make_shared<const Sps>(std::move(s));
    } else {
      Pps p = parse_pps(r, sps_);
      p.rbsp = rbsp.bytes;
      const auto id = static_cast<size_t>(p.pps_pic_parameter_set_id);
      if (!pps_[id] || pps_[id]->rbsp != p.rbsp) {
        // Validate the tile structure against its SPS now, so that a bad PPS is reported where it is.
        build_ctb_layout(*sps_[static_cast<size_t>(p.pps_seq_parameter_set_id)], p);
        pps_[id] = std::make_shared<const Pps>(std::move(p));
      }
    }
  }
  if (options_.trace && !dump.fields.empty()) dumps_.push_back(std::move(dump));  // skipped slices: no dump
}

void StreamParser::process_slice(const NalHeader& nal_bits, const Rbsp& rbsp, Trace* trace) {
  const SliceHeaderPrefix prefix = peek_slice_header(rbsp.bytes.data(), rbsp.bytes.size());
  if (prefix.first_slice_segment_in_pic_flag) {
    finish_picture();
    start_picture(nal_bits, rbsp, prefix, trace);
    return;
  }
  if (dropping_picture_ || waiting_for_irap_) return;  // skipped pictures are not parsed (nor dumped)
  if (!current_) {
    throw ParseError(ErrorKind::InvalidValue, "slice segment without the first slice segment of its picture");
  }
  add_slice(nal_bits, rbsp, trace);
}

void StreamParser::start_picture(const NalHeader& nal_bits, const Rbsp& rbsp, const SliceHeaderPrefix& prefix,
                                 Trace* trace) {
  const int type = nal_bits.nal_unit_type;
  const bool irap = is_irap(type);
  dropping_picture_ = false;
  last_independent_.reset();
  current_dpb_.reset();
  const int64_t decode_index = next_decode_index_++;
  picture_index_ = decode_index;
  slice_index_ = 0;

  if (waiting_for_irap_ && !irap) {
    // Not decodable: its references precede the stream start or the error.
    dropping_picture_ = true;
    ++stats_.dropped_pictures;
    return;
  }
  const auto& pps = pps_[static_cast<size_t>(prefix.slice_pic_parameter_set_id)];
  if (!pps) {
    throw ParseError(ErrorKind::MissingParameterSet,
                     "slice refers to PPS " + std::to_string(prefix.slice_pic_parameter_set_id) + ", never received");
  }
  const auto& stored_sps = sps_[static_cast<size_t>(pps->pps_seq_parameter_set_id)];
  if (!stored_sps) {
    throw ParseError(ErrorKind::MissingParameterSet,
                     "PPS " + std::to_string(pps->pps_pic_parameter_set_id) + " refers to SPS " +
                         std::to_string(pps->pps_seq_parameter_set_id) + ", never received");
  }
  // NoRaslOutputFlag (8.1.3): IDR, BLA, the first picture, the first after EOS or after an error (a CRA
  // there is handled like a BLA: HandleCraAsBlaFlag).
  const bool no_rasl_output = irap && (is_idr(type) || is_bla(type) || next_irap_no_rasl_);
  if (irap && no_rasl_output) {
    active_sps_ = stored_sps;  // SPS activation at the start of a coded video sequence (7.4.3.2)
  } else if (!active_sps_ || active_sps_->sps_seq_parameter_set_id != pps->pps_seq_parameter_set_id) {
    throw ParseError(ErrorKind::InvalidValue,
                     "PPS " + std::to_string(pps->pps_pic_parameter_set_id) + " refers to SPS " +
                         std::to_string(pps->pps_seq_parameter_set_id) +
                         ", which is not the SPS of the current coded video sequence");
  }
  const std::shared_ptr<const Sps>& sps = active_sps_;
  if (layout_sps_ != sps || layout_pps_ != pps) {
    layout_ = std::make_shared<const CtbLayout>(build_ctb_layout(*sps, *pps));
    layout_sps_ = sps;
    layout_pps_ = pps;
  }

  BitReader r(rbsp.bytes.data(), rbsp.bytes.size(), trace);
  const NalHeader nal = parse_nal_unit_header(r);
  auto header = std::make_shared<SliceHeader>(parse_slice_header(r, nal, *sps, *pps, nullptr));

  PictureRecord pic;
  pic.decode_index = decode_index;
  pic.nal_unit_type = type;
  pic.temporal_id = nal.temporal_id();
  pic.is_irap = irap;
  pic.no_rasl_output_flag = no_rasl_output;
  pic.pic_output_flag = header->pic_output_flag;
  pic.width = sps->pic_width_in_luma_samples;
  pic.height = sps->pic_height_in_luma_samples;
  pic.cropped_width = sps->cropped_width;
  pic.cropped_height = sps->cropped_height;
  pic.crop_left = sps->SubWidthC * sps->conf_win_left_offset;
  pic.crop_right = sps->SubWidthC * sps->conf_win_right_offset;
  pic.crop_top = sps->SubHeightC * sps->conf_win_top_offset;
  pic.crop_bottom = sps->SubHeightC * sps->conf_win_bottom_offset;
  pic.sps_id = sps->sps_seq_parameter_set_id;
  pic.pps_id = pps->pps_pic_parameter_set_id;
  pic.sps = sps;
  pic.pps = pps;

  pic.poc = poc_.decode(*header, *sps, no_rasl_output);
  if (irap) {
    skip_rasl_ = no_rasl_output;
    waiting_for_irap_ = false;
    next_irap_no_rasl_ = false;
  }
  if (is_rasl(type) && skip_rasl_) {
    pic.decodable = false;  // RASL of a CRA/BLA with NoRaslOutputFlag = 1: references are not available
    pic.pic_output_flag = false;
  } else {
    pic.rps = dpb_.apply_rps(*header, *sps, pic.poc, irap && no_rasl_output, irap && no_rasl_output && !is_idr(type));
    stats_.generated_missing += pic.rps.generated_missing;
    current_dpb_ = dpb_.add_current(pic.poc, decode_index);
    pic.dpb_id = current_dpb_->id;
  }
  poc_.picture_decoded(*header, pic.poc);
  current_ = std::move(pic);
  last_independent_ = header;
  append_slice(header, rbsp, trace);
}

void StreamParser::add_slice(const NalHeader& nal_bits, const Rbsp& rbsp, Trace* trace) {
  PictureRecord& pic = *current_;
  slice_index_ = static_cast<int64_t>(pic.slices.size());
  if (nal_bits.nal_unit_type != pic.nal_unit_type) {
    throw ParseError(ErrorKind::InvalidValue, std::string("slice segment of type ") +
                                                  nal_type_name(nal_bits.nal_unit_type) + " in a " +
                                                  nal_type_name(pic.nal_unit_type) + " picture");
  }
  BitReader r(rbsp.bytes.data(), rbsp.bytes.size(), trace);
  const NalHeader nal = parse_nal_unit_header(r);
  auto header = std::make_shared<SliceHeader>(parse_slice_header(r, nal, *pic.sps, *pic.pps, last_independent_.get()));
  if (header->slice_pic_parameter_set_id != pic.pps_id) {
    throw ParseError(ErrorKind::InvalidValue, "slice_pic_parameter_set_id " +
                                                  std::to_string(header->slice_pic_parameter_set_id) +
                                                  " differs from the picture's PPS " + std::to_string(pic.pps_id));
  }
  if (!header->dependent_slice_segment_flag) last_independent_ = header;
  append_slice(header, rbsp, trace);
}

void StreamParser::append_slice(const std::shared_ptr<const SliceHeader>& header, const Rbsp& rbsp, Trace* trace) {
  PictureRecord& pic = *current_;
  slice_index_ = static_cast<int64_t>(pic.slices.size());
  SliceRecord rec;
  rec.nal_index = nal_index_;
  rec.slice_type = header->slice_type;
  rec.slice_segment_address = header->slice_segment_address;
  rec.dependent_slice_segment_flag = header->dependent_slice_segment_flag;
  rec.slice_qp_y = header->SliceQpY;
  rec.entry_point_offset_minus1 = header->entry_point_offset_minus1;
  rec.slice_data_byte_offset = header->slice_data_byte_offset;
  if (pic.decodable) {
    rec.ref_list[0] = build_ref_pic_list(0, *header, pic.rps);
    rec.ref_list[1] = build_ref_pic_list(1, *header, pic.rps);
  }
  rec.substream_offsets = substream_offsets(rbsp, header->slice_data_byte_offset, header->entry_point_offset_minus1);
  if (hook_ && pic.decodable) {
    hook_(SliceContext{*pic.sps, *pic.pps, *layout_, *header, rbsp, rec.substream_offsets, rec.ref_list[0],
                       rec.ref_list[1], current_dpb_, nal_index_});
  }
  rec.header = header;
  if (trace != nullptr) rec.fields = *trace;
  pic.slices.push_back(std::move(rec));
}

void StreamParser::finish_picture() {
  dropping_picture_ = false;
  picture_index_ = -1;
  if (!current_) return;
  done_.push_back(std::move(*current_));
  current_.reset();
  current_dpb_.reset();
  last_independent_.reset();
  ++stats_.pictures;
}

}  // namespace arseg::hevc
