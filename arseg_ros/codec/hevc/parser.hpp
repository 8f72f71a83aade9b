// The incremental stream parser: NAL units in, picture records out (decode order), with parameter-set
// storage and activation, POC, RPS/DPB and reference lists, and an optional per-field trace of every
// VPS/SPS/PPS/slice segment header.
//
// Error handling and recovery rule: a corrupt or unsupported NAL unit raises ParseError (with NAL index,
// picture, slice segment and RBSP bit position) from feed()/feed_access_unit()/flush(), after the rest of
// the input of that call has been processed. The picture being built when the error happened is dropped;
// the parser then skips every coded slice segment until the first slice segment of the next IRAP picture,
// which starts a new coded video sequence (NoRaslOutputFlag = 1, so the RASL pictures that follow it are
// returned as not decodable). Parameter sets are still parsed and stored while skipping. Only the first
// error of a call is raised; all are counted in stats(). The same skipping applies at the start of a stream
// (pictures before the first IRAP are dropped, not an error). Pictures completed before or after the error
// stay queued and are returned by take_pictures().
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bitreader.hpp"
#include "nal.hpp"
#include "params.hpp"
#include "refs.hpp"
#include "slice_header.hpp"

namespace arseg::hevc {

struct ParserOptions {
  bool trace = false;  // record (position, name, value) of every header field (NalDump, SliceRecord::fields)
};

// One slice segment of a picture.
struct SliceRecord {
  int64_t nal_index = -1;
  int slice_type = kSliceI;
  uint32_t slice_segment_address = 0;
  bool dependent_slice_segment_flag = false;
  int slice_qp_y = 26;                        // SliceQpY
  std::vector<RefEntry> ref_list[2];          // RefPicList0 / RefPicList1 (empty for I slices)
  std::vector<uint32_t> entry_point_offset_minus1;
  std::vector<size_t> substream_offsets;      // RBSP byte where each substream starts (index 0: slice data start)
  size_t slice_data_byte_offset = 0;          // RBSP byte where slice_segment_data() starts
  std::shared_ptr<const SliceHeader> header;  // every decoded header field
  Trace fields;                               // the header trace (ParserOptions::trace)
};

// One coded picture, emitted in decode order when it is complete.
struct PictureRecord {
  int64_t decode_index = 0;  // decode-order index among the pictures of the stream
  int64_t poc = 0;           // PicOrderCntVal
  int nal_unit_type = 0;
  int temporal_id = 0;
  bool is_irap = false;
  bool no_rasl_output_flag = false;
  bool decodable = true;      // false: RASL picture of an IRAP with NoRaslOutputFlag = 1 (skipped, 8.1.3)
  bool pic_output_flag = true;
  int width = 0, height = 0;                  // pic_width/height_in_luma_samples
  int cropped_width = 0, cropped_height = 0;  // after the conformance window (luma samples)
  int crop_left = 0, crop_right = 0, crop_top = 0, crop_bottom = 0;  // conformance window in luma samples
  int sps_id = 0, pps_id = 0;
  int64_t dpb_id = -1;        // id of the DpbPicture of this picture (-1 when not decodable)
  RefPicSet rps;              // 8.3.2 lists of this picture
  std::vector<SliceRecord> slices;
  std::shared_ptr<const Sps> sps;
  std::shared_ptr<const Pps> pps;
};

// The traced header of one NAL unit (ParserOptions::trace).
struct NalDump {
  int64_t nal_index = -1;
  int nal_unit_type = 0;
  int temporal_id = 0;
  std::string title;  // FFmpeg CBS titles: "Video Parameter Set", "Sequence Parameter Set", ...
  Trace fields;
};

// What the slice-data layer receives for every slice segment of a decodable picture.
struct SliceContext {
  const Sps& sps;
  const Pps& pps;
  const CtbLayout& layout;
  const SliceHeader& header;
  const Rbsp& rbsp;
  const std::vector<size_t>& substream_offsets;
  const std::vector<RefEntry>& ref_list0;
  const std::vector<RefEntry>& ref_list1;
  const DpbPicturePtr& picture;
  int64_t nal_index;
};
using SliceDataHook = std::function<void(const SliceContext&)>;

struct ParserStats {
  int64_t nal_units = 0;
  int64_t pictures = 0;          // pictures emitted
  int64_t dropped_pictures = 0;  // pictures skipped before an IRAP (stream start or error recovery)
  int64_t errors = 0;
  int64_t generated_missing = 0;  // placeholder reference pictures (8.3.3)
};

class StreamParser {
 public:
  explicit StreamParser(ParserOptions options = {});

  // Annex B bytes in arbitrary chunks; a NAL unit is parsed once the next start code (or flush()) arrives.
  void feed(const uint8_t* data, size_t size);
  // One complete access unit: length_size 1, 2 or 4 for length-prefixed NAL units, 0 for Annex B. The
  // picture is complete at the end of the access unit.
  void feed_access_unit(const uint8_t* data, size_t size, int length_size);
  // Ends the stream: parses the buffered NAL unit and completes the last picture. The next input starts
  // a new stream (parameter sets are kept; the next IRAP gets NoRaslOutputFlag = 1).
  void flush();

  std::vector<PictureRecord> take_pictures();
  std::vector<NalDump> take_dumps();
  const ParserStats& stats() const { return stats_; }
  void set_slice_data_hook(SliceDataHook hook) { hook_ = std::move(hook); }

  // Parameter sets as currently stored (null where never received).
  std::shared_ptr<const Sps> sps(int id) const { return sps_[static_cast<size_t>(id)]; }
  std::shared_ptr<const Pps> pps(int id) const { return pps_[static_cast<size_t>(id)]; }

 private:
  void handle_nal(const uint8_t* data, size_t size);  // records errors, enters recovery
  void process_nal(const uint8_t* data, size_t size);
  void process_slice(const NalHeader& nal, const Rbsp& rbsp, Trace* trace);
  void start_picture(const NalHeader& nal, const Rbsp& rbsp, const SliceHeaderPrefix& prefix, Trace* trace);
  void add_slice(const NalHeader& nal, const Rbsp& rbsp, Trace* trace);
  void append_slice(const std::shared_ptr<const SliceHeader>& header, const Rbsp& rbsp, Trace* trace);
  void finish_picture();
  void raise_pending();
  Location where() const;

  ParserOptions options_;
  AnnexBSplitter splitter_;
  std::array<std::shared_ptr<const Vps>, kMaxVpsId + 1> vps_{};
  std::array<std::shared_ptr<const Sps>, kMaxSpsId + 1> sps_{};
  std::array<std::shared_ptr<const Pps>, kMaxPpsId + 1> pps_{};
  std::shared_ptr<const Sps> active_sps_;
  // Layout cache for the (SPS, PPS) pair in use.
  std::shared_ptr<const Sps> layout_sps_;
  std::shared_ptr<const Pps> layout_pps_;
  std::shared_ptr<const CtbLayout> layout_;

  PocDecoder poc_;
  Dpb dpb_;
  bool waiting_for_irap_ = true;   // skip slices until an IRAP (stream start, after an error)
  bool next_irap_no_rasl_ = true;  // the next IRAP starts a CVS with NoRaslOutputFlag = 1 (HandleCraAsBla)
  bool skip_rasl_ = false;         // the associated IRAP has NoRaslOutputFlag = 1
  bool dropping_picture_ = false;  // the current picture's slices are skipped

  std::optional<PictureRecord> current_;
  std::shared_ptr<const SliceHeader> last_independent_;
  DpbPicturePtr current_dpb_;
  int64_t next_decode_index_ = 0;
  int64_t nal_index_ = -1;
  int64_t picture_index_ = -1;
  int64_t slice_index_ = -1;

  std::deque<PictureRecord> done_;
  std::vector<NalDump> dumps_;
  std::optional<ParseError> pending_error_;
  ParserStats stats_;
  SliceDataHook hook_;
};

}  // namespace arseg::hevc
