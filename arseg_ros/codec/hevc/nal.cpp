#include "nal.hpp"

#include <string>

namespace arseg::hevc {

const char* nal_type_name(int t) {
  static const char* const kNames[] = {
      "TRAIL_N", "TRAIL_R", "TSA_N",  "TSA_R",  "STSA_N",     "STSA_R",     "RADL_N",  "RADL_R",
      "RASL_N",  "RASL_R",  "RSV_VCL_N10", "RSV_VCL_R11", "RSV_VCL_N12", "RSV_VCL_R13", "RSV_VCL_N14",
      "RSV_VCL_R15", "BLA_W_LP", "BLA_W_RADL", "BLA_N_LP", "IDR_W_RADL", "IDR_N_LP", "CRA_NUT",
      "RSV_IRAP_VCL22", "RSV_IRAP_VCL23"};
  if (t >= 0 && t <= kRsvIrapVcl23) return kNames[t];
  switch (t) {
    case kVps: return "VPS";
    case kSps: return "SPS";
    case kPps: return "PPS";
    case kAud: return "AUD";
    case kEos: return "EOS";
    case kEob: return "EOB";
    case kFd: return "FD";
    case kPrefixSei: return "SEI_PREFIX";
    case kSuffixSei: return "SEI_SUFFIX";
    default: return t < 32 ? "RSV_VCL" : (t < 48 ? "RSV_NVCL" : "UNSPEC");
  }
}

// 7.3.1.2 nal_unit_header()
NalHeader parse_nal_unit_header(BitReader& r) {
  NalHeader h;
  r.fixed(1, "forbidden_zero_bit", 0);
  h.nal_unit_type = static_cast<int>(r.u(6, "nal_unit_type"));
  h.nuh_layer_id = static_cast<int>(r.u(6, "nuh_layer_id"));
  h.nuh_temporal_id_plus1 = static_cast<int>(r.u_range(3, "nuh_temporal_id_plus1", 1, 7));
  return h;
}

namespace {

// Length of the start code prefix (3 for 00 00 01) at data[i], or 0.
bool start_code_at(const uint8_t* data, size_t size, size_t i) {
  return i + 2 < size && data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1;
}

// [begin, end) with trailing zero bytes (trailing_zero_8bits, the first zero of a 4-byte start code) removed.
size_t trim_zeros(const uint8_t* data, size_t begin, size_t end) {
  while (end > begin && data[end - 1] == 0) --end;
  return end;
}

}  // namespace

// B.2 byte_stream_nal_unit()
std::vector<ByteRange> split_annexb(const uint8_t* data, size_t size) {
  std::vector<ByteRange> out;
  size_t i = 0;
  while (i < size && !start_code_at(data, size, i)) ++i;
  while (i < size) {
    const size_t begin = i + 3;
    size_t j = begin;
    while (j < size && !start_code_at(data, size, j)) ++j;
    const size_t end = trim_zeros(data, begin, j);
    if (end > begin) out.emplace_back(begin, end - begin);
    i = j;
  }
  return out;
}

std::vector<ByteRange> split_length_prefixed(const uint8_t* data, size_t size, int length_size) {
  if (length_size != 1 && length_size != 2 && length_size != 4) {
    throw ParseError(ErrorKind::InvalidValue, "NAL length size " + std::to_string(length_size) + " not in {1, 2, 4}");
  }
  std::vector<ByteRange> out;
  size_t i = 0;
  while (i < size) {
    if (size - i < static_cast<size_t>(length_size)) {
      throw ParseError(ErrorKind::Truncated, "NAL unit length field cut off at byte " + std::to_string(i));
    }
    uint64_t n = 0;
    for (int k = 0; k < length_size; ++k) n = (n << 8) | data[i + static_cast<size_t>(k)];
    i += static_cast<size_t>(length_size);
    if (n > size - i) {
      throw ParseError(ErrorKind::Truncated, "NAL unit of " + std::to_string(n) + " bytes runs past the end of the " +
                                                 std::to_string(size) + "-byte access unit");
    }
    if (n > 0) out.emplace_back(i, static_cast<size_t>(n));
    i += static_cast<size_t>(n);
  }
  return out;
}

void AnnexBSplitter::emit(size_t end, const Sink& sink) {
  const size_t stop = trim_zeros(buffer_.data(), 0, end);
  if (stop > 0) sink(buffer_.data(), stop);
}

void AnnexBSplitter::feed(const uint8_t* data, size_t size, const Sink& sink) {
  buffer_.insert(buffer_.end(), data, data + size);
  size_t consumed = 0;  // buffer bytes already handed out or discarded
  size_t i = scan_;
  while (i + 2 < buffer_.size()) {
    if (buffer_[i + 2] > 1) {  // no start code can begin at i, i + 1 or i + 2
      i += 3;
      continue;
    }
    if (start_code_at(buffer_.data(), buffer_.size(), i)) {
      if (in_nal_) {
        const size_t stop = trim_zeros(buffer_.data(), consumed, i);
        if (stop > consumed) sink(buffer_.data() + consumed, stop - consumed);
      }
      in_nal_ = true;
      i += 3;
      consumed = i;
      continue;
    }
    ++i;
  }
  if (!in_nal_) {
    // Nothing but leading bytes so far: keep only what could be the start of a start code.
    consumed = buffer_.size() > 2 ? buffer_.size() - 2 : 0;
    i = 0;
  } else {
    i -= consumed;
  }
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(consumed));
  scan_ = i;
}

void AnnexBSplitter::finish(const Sink& sink) {
  if (in_nal_) emit(buffer_.size(), sink);
  buffer_.clear();
  scan_ = 0;
  in_nal_ = false;
}

}  // namespace arseg::hevc
