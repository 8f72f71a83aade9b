// Typed parse errors of the HEVC parser. Every failure says what went wrong and where.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace arseg::hevc {

enum class ErrorKind {
  Truncated,            // a read ran past the end of the NAL unit, slice segment or substream
  InvalidValue,         // a syntax element outside the range the standard allows
  Unsupported,          // valid HEVC outside what this parser handles (e.g. 4:2:2, range extensions)
  MissingParameterSet,  // a slice or PPS refers to a parameter set that was never received
  Desync,               // the arithmetic decoder did not end exactly at an entry point / the end of the data
};

inline const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Truncated: return "truncated";
    case ErrorKind::InvalidValue: return "invalid value";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::MissingParameterSet: return "missing parameter set";
    case ErrorKind::Desync: return "desynchronised";
  }
  return "error";
}

// Where in the stream an error happened; -1 means "not applicable / unknown".
struct Location {
  int64_t nal_index = -1;     // index of the NAL unit in the input, counted from 0
  int64_t picture = -1;       // decode-order index of the picture
  int64_t slice = -1;         // slice segment index within the picture
  int64_t ctu = -1;           // CTB address in raster scan
  int64_t bit_position = -1;  // bit offset in the RBSP (emulation-prevention bytes removed)

  std::string describe() const {
    std::string s;
    auto add = [&s](const char* name, int64_t v) {
      if (v < 0) return;
      if (!s.empty()) s += ", ";
      s += name;
      s += ' ';
      s += std::to_string(v);
    };
    add("NAL unit", nal_index);
    add("picture", picture);
    add("slice segment", slice);
    add("CTU", ctu);
    add("bit", bit_position);
    return s;
  }
};

class ParseError : public std::runtime_error {
 public:
  ParseError(ErrorKind kind, const std::string& message, Location where = {})
      : std::runtime_error(compose(kind, message, where)), kind_(kind), message_(message), where_(where) {}

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const Location& where() const { return where_; }

  // A copy with more location detail filled in by an outer layer (fields already set are kept).
  ParseError located(const Location& outer) const {
    Location w = where_;
    if (w.nal_index < 0) w.nal_index = outer.nal_index;
    if (w.picture < 0) w.picture = outer.picture;
    if (w.slice < 0) w.slice = outer.slice;
    if (w.ctu < 0) w.ctu = outer.ctu;
    if (w.bit_position < 0) w.bit_position = outer.bit_position;
    return ParseError(kind_, message_, w);
  }

 private:
  static std::string compose(ErrorKind kind, const std::string& message, const Location& where) {
    std::string s = std::string(to_string(kind)) + ": " + message;
    const std::string at = where.describe();
    if (!at.empty()) s += " (at " + at + ")";
    return s;
  }

  ErrorKind kind_;
  std::string message_;
  Location where_;
};

}  // namespace arseg::hevc
