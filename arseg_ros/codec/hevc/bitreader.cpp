#include "bitreader.hpp"

#include <algorithm>

namespace arseg::hevc {

size_t Rbsp::to_escaped(size_t rbsp_offset) const {
  // The k-th removed byte (0-based) sat before RBSP byte epb_positions[k] - k.
  size_t added = 0;
  for (size_t k = 0; k < epb_positions.size(); ++k) {
    if (epb_positions[k] - k <= rbsp_offset) {
      added = k + 1;
    } else {
      break;
    }
  }
  return rbsp_offset + added;
}

size_t Rbsp::to_rbsp(size_t escaped_offset) const {
  const auto removed_before =
      static_cast<size_t>(std::lower_bound(epb_positions.begin(), epb_positions.end(), escaped_offset) -
                          epb_positions.begin());
  return escaped_offset - removed_before;
}

// 7.3.1.1 nal_unit() / 7.4.2: emulation_prevention_three_byte removal.
Rbsp unescape_nal(const uint8_t* data, size_t size) {
  Rbsp out;
  out.bytes.reserve(size);
  int zeros = 0;
  for (size_t i = 0; i < size; ++i) {
    const uint8_t b = data[i];
    if (zeros >= 2 && b == 0x03) {
      out.epb_positions.push_back(i);
      zeros = 0;
      continue;
    }
    out.bytes.push_back(b);
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return out;
}

std::vector<size_t> substream_offsets(const Rbsp& rbsp, size_t slice_data_offset,
                                      const std::vector<uint32_t>& entry_point_offset_minus1) {
  std::vector<size_t> starts;
  starts.reserve(entry_point_offset_minus1.size() + 1);
  starts.push_back(slice_data_offset);
  // firstByte[k] = sum of (entry_point_offset_minus1[n - 1] + 1) for n = 1..k, counted from the first
  // byte of the slice segment data in the escaped NAL unit (7.4.7.1).
  const uint64_t escaped_size = rbsp.bytes.size() + rbsp.epb_positions.size();
  uint64_t escaped = rbsp.to_escaped(slice_data_offset);
  for (size_t k = 0; k < entry_point_offset_minus1.size(); ++k) {
    escaped += static_cast<uint64_t>(entry_point_offset_minus1[k]) + 1;
    if (escaped >= escaped_size) {
      throw ParseError(ErrorKind::InvalidValue,
                       "entry_point_offset_minus1[" + std::to_string(k) + "] points past the end of the NAL unit");
    }
    starts.push_back(rbsp.to_rbsp(static_cast<size_t>(escaped)));
  }
  return starts;
}

std::string Name::str() const {
  std::string s = base;
  for (int i = 0; i < count; ++i) {
    s += '[';
    s += std::to_string(index[i]);
    s += ']';
  }
  return s;
}

BitReader::BitReader(const uint8_t* data, size_t size, Trace* trace)
    : data_(data), size_bits_(static_cast<uint64_t>(size) * 8), stop_bit_(static_cast<uint64_t>(size) * 8),
      trace_(trace) {
  for (size_t i = size; i > 0; --i) {
    const uint8_t b = data_[i - 1];
    if (b != 0) {
      int low = 0;
      while (((b >> low) & 1) == 0) ++low;
      stop_bit_ = static_cast<uint64_t>(i) * 8 - 1 - static_cast<uint64_t>(low);
      break;
    }
  }
}

void BitReader::fail(ErrorKind kind, const std::string& message) const { fail_at(kind, message, pos_); }

void BitReader::fail_at(ErrorKind kind, const std::string& message, uint64_t at) const {
  Location where;
  where.bit_position = static_cast<int64_t>(at);
  throw ParseError(kind, message, where);
}

uint64_t BitReader::read_bits(unsigned n) {
  if (n > size_bits_ - pos_) {
    fail(ErrorKind::Truncated, "read of " + std::to_string(n) + " bits past the end of the NAL unit (" +
                                   std::to_string(size_bits_) + " bits)");
  }
  uint64_t v = 0;
  for (unsigned i = 0; i < n; ++i) {
    const uint64_t p = pos_ + i;
    v = (v << 1) | ((data_[p >> 3] >> (7 - (p & 7))) & 1U);
  }
  pos_ += n;
  return v;
}

void BitReader::record(uint64_t at, const Name& name, int64_t value) {
  if (trace_ != nullptr) trace_->push_back(TraceField{static_cast<int64_t>(at), name.str(), value});
}

void BitReader::out_of_range(const Name& name, int64_t value, int64_t lo, int64_t hi, uint64_t at) const {
  fail_at(ErrorKind::InvalidValue,
          name.str() + " = " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "]",
          at);
}

// 7.2 u(n)
uint32_t BitReader::u(unsigned n, const Name& name) {
  const uint64_t at = pos_;
  const auto v = static_cast<uint32_t>(read_bits(n));
  record(at, name, v);
  return v;
}

uint32_t BitReader::u_range(unsigned n, const Name& name, uint32_t lo, uint32_t hi) {
  const uint64_t at = pos_;
  const uint32_t v = u(n, name);
  if (v < lo || v > hi) out_of_range(name, v, lo, hi, at);
  return v;
}

void BitReader::fixed(unsigned n, const Name& name, uint32_t expected) {
  const uint64_t at = pos_;
  const uint32_t v = u(n, name);
  if (v != expected) {
    fail_at(ErrorKind::InvalidValue,
            name.str() + " = " + std::to_string(v) + ", must be " + std::to_string(expected), at);
  }
}

void BitReader::reserved_bits(unsigned n, const Name& name) {
  while (n > 0) {
    const unsigned piece = std::min(n, 24U);
    u(piece, name);
    n -= piece;
  }
}

// 9.2 Exp-Golomb: leadingZeroBits, then codeNum = 2^leadingZeroBits - 1 + read_bits(leadingZeroBits).
uint32_t BitReader::ue(const Name& name, uint32_t lo, uint32_t hi) {
  const uint64_t at = pos_;
  unsigned leading_zeros = 0;
  while (read_bits(1) == 0) {
    if (++leading_zeros > 31) fail_at(ErrorKind::InvalidValue, name.str() + ": Exp-Golomb code longer than 32 bits", at);
  }
  const uint64_t v = ((uint64_t{1} << leading_zeros) - 1) + read_bits(leading_zeros);
  record(at, name, static_cast<int64_t>(v));
  if (v < lo || v > hi) out_of_range(name, static_cast<int64_t>(v), lo, hi, at);
  return static_cast<uint32_t>(v);
}

// 9.2.2 se(v): codeNum k maps to (-1)^(k+1) * Ceil(k / 2).
int32_t BitReader::se(const Name& name, int32_t lo, int32_t hi) {
  const uint64_t at = pos_;
  unsigned leading_zeros = 0;
  while (read_bits(1) == 0) {
    if (++leading_zeros > 31) fail_at(ErrorKind::InvalidValue, name.str() + ": Exp-Golomb code longer than 32 bits", at);
  }
  const uint64_t k = ((uint64_t{1} << leading_zeros) - 1) + read_bits(leading_zeros);
  const auto magnitude = static_cast<int64_t>((k + 1) / 2);
  const int64_t v = (k & 1) != 0 ? magnitude : -magnitude;
  record(at, name, v);
  if (v < lo || v > hi) out_of_range(name, v, lo, hi, at);
  return static_cast<int32_t>(v);
}

// 7.2 more_rbsp_data()
bool BitReader::more_rbsp_data() const { return pos_ < stop_bit_; }

// 7.3.2.11 rbsp_trailing_bits()
void BitReader::rbsp_trailing_bits() {
  fixed(1, "rbsp_stop_one_bit", 1);
  while (!byte_aligned()) fixed(1, "rbsp_alignment_zero_bit", 0);
}

// 7.3.2.12 byte_alignment()
void BitReader::byte_alignment() {
  fixed(1, "alignment_bit_equal_to_one", 1);
  while (!byte_aligned()) fixed(1, "alignment_bit_equal_to_zero", 0);
}

unsigned ceil_log2(uint64_t x) {
  unsigned n = 0;
  while ((uint64_t{1} << n) < x) ++n;
  return n;
}

}  // namespace arseg::hevc
