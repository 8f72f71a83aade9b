// File input and output shared by the native test drivers of test/native/.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

namespace driver_io {

// The bytes of the file at `path`, or nullopt after a message on stderr when it cannot be opened.
inline std::optional<std::vector<uint8_t>> read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", path);
    return std::nullopt;
  }
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// `path` opened for writing a --dump output, or nullptr after a message on stderr.
inline std::FILE* open_dump(const char* path) {
  std::FILE* f = std::fopen(path, "wb");
  if (f == nullptr) std::fprintf(stderr, "cannot write %s\n", path);
  return f;
}

}  // namespace driver_io
