// Bit-level access to one NAL unit: emulation-prevention removal (7.4.2) with a map of the removed bytes,
// and a bounds-checked reader for the descriptors of 7.2 / 9.2 (u(n), f(n), ue(v), se(v)).
// Every syntax read can be named so that a trace of (position, name, value) is recorded for debug dumps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.hpp"

namespace arseg::hevc {

// One traced syntax element. position: bit offset from the first bit of the NAL unit header in the RBSP
// (emulation-prevention bytes removed). name: the spec name with array indices ("delta_poc_s0_minus1[0]").
struct TraceField {
  int64_t position = 0;
  std::string name;
  int64_t value = 0;
};

using Trace = std::vector<TraceField>;

// The RBSP of one NAL unit (header included) and where the emulation-prevention bytes were.
struct Rbsp {
  std::vector<uint8_t> bytes;
  // Offsets, in the escaped NAL unit (header included), of every removed emulation_prevention_three_byte,
  // in increasing order.
  std::vector<size_t> epb_positions;

  // The escaped-NAL offset of RBSP byte rbsp_offset (rbsp_offset may equal bytes.size(): one past the end).
  size_t to_escaped(size_t rbsp_offset) const;
  // The RBSP offset of escaped-NAL byte escaped_offset; an emulation-prevention byte maps to the byte after it.
  size_t to_rbsp(size_t escaped_offset) const;
};

// 7.4.2: removes every emulation_prevention_three_byte (0x03 following 0x00 0x00) from an escaped NAL unit.
Rbsp unescape_nal(const uint8_t* data, size_t size);

// The RBSP byte offsets where the substreams of a slice segment start (7.4.7.1 entry_point_offset_minus1):
// element 0 is slice_data_offset (the RBSP byte where slice_segment_data() starts), element k is the
// start of substream k. entry_point_offset_minus1[] counts bytes of the escaped NAL unit (emulation-prevention
// bytes included), so each offset is mapped back through the emulation-prevention map.
// Throws ParseError(InvalidValue) when a substream would start at or after the end of the NAL unit.
std::vector<size_t> substream_offsets(const Rbsp& rbsp, size_t slice_data_offset,
                                      const std::vector<uint32_t>& entry_point_offset_minus1);

// A syntax element name with optional array indices, formatted only when a trace is recorded.
struct Name {
  const char* base;
  int index[3] = {0, 0, 0};
  int count = 0;
  Name(const char* b) : base(b) {}  // NOLINT(google-explicit-constructor): names read like the spec
  Name(const char* b, int i) : base(b), index{i, 0, 0}, count(1) {}
  Name(const char* b, int i, int j) : base(b), index{i, j, 0}, count(2) {}
  Name(const char* b, int i, int j, int k) : base(b), index{i, j, k}, count(3) {}
  std::string str() const;
};

class BitReader {
 public:
  // Reads [data, data + size). trace, when not null, receives one TraceField per syntax element read.
  BitReader(const uint8_t* data, size_t size, Trace* trace = nullptr);

  // 7.2 u(n) / f(n), 0 <= n <= 32.
  uint32_t u(unsigned n, const Name& name);
  // u(n) that must lie in [lo, hi], else ParseError(InvalidValue).
  uint32_t u_range(unsigned n, const Name& name, uint32_t lo, uint32_t hi);
  // A one-bit flag.
  bool flag(const Name& name) { return u(1, name) != 0; }
  // f(n) with a required value (forbidden_zero_bit, stop/alignment bits), else ParseError(InvalidValue).
  void fixed(unsigned n, const Name& name, uint32_t expected);
  // A field longer than 32 bits traced in pieces of at most 24 bits, like FFmpeg's CBS (e.g. 43 = 24 + 19).
  void reserved_bits(unsigned n, const Name& name);
  // 9.2 ue(v) capped at 32 leading zero bits (values up to 2^32 - 2), range-checked to [lo, hi].
  uint32_t ue(const Name& name, uint32_t lo, uint32_t hi);
  // 9.2 se(v), range-checked to [lo, hi].
  int32_t se(const Name& name, int32_t lo, int32_t hi);

  // 7.2 more_rbsp_data(): true while there is data before the rbsp_stop_one_bit.
  bool more_rbsp_data() const;
  // 7.3.2.11 rbsp_trailing_bits().
  void rbsp_trailing_bits();
  // 7.3.2.12 byte_alignment().
  void byte_alignment();
  bool byte_aligned() const { return (pos_ & 7) == 0; }

  // Position of the next bit to read, in bits from the start of the data.
  uint64_t position() const { return pos_; }
  uint64_t size_bits() const { return size_bits_; }
  uint64_t bits_left() const { return size_bits_ - pos_; }
  bool tracing() const { return trace_ != nullptr; }

  // ParseError(kind) located at the current bit position.
  [[noreturn]] void fail(ErrorKind kind, const std::string& message) const;
  // ParseError(kind) located at bit position `at`.
  [[noreturn]] void fail_at(ErrorKind kind, const std::string& message, uint64_t at) const;

 private:
  uint64_t read_bits(unsigned n);
  void record(uint64_t at, const Name& name, int64_t value);
  [[noreturn]] void out_of_range(const Name& name, int64_t value, int64_t lo, int64_t hi, uint64_t at) const;

  const uint8_t* data_;
  uint64_t size_bits_;
  uint64_t pos_ = 0;
  uint64_t stop_bit_;  // position of the last 1 bit (the rbsp_stop_one_bit), or size_bits_ when there is none
  Trace* trace_;
};

// Ceil(Log2(x)) for x >= 1 (5.7), the number of bits of slice_segment_address, short_term_ref_pic_set_idx...
unsigned ceil_log2(uint64_t x);

}  // namespace arseg::hevc
