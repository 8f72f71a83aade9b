// Sanitizer driver for the HEVC header layers: reads an Annex B file and runs the incremental parser over
// it in chunks, with header tracing on, printing one line per picture. Parse errors are reported and
// parsing continues (the parser's recovery rule); only a crash or a sanitizer report fails the run.
//
// Usage: hevc_headers_driver FILE [CHUNK_BYTES [layout]]   (CHUNK_BYTES 0 or absent: the whole file at once)
// With "layout", the CTB scan tables of the first slice segment's picture (6.5.1, 6.5.2) are printed too.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "arseg_ros/codec/hevc/parser.hpp"
#include "driver_io.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [CHUNK_BYTES]\n", argv[0]);
    return 2;
  }
  const std::optional<std::vector<uint8_t>> input = driver_io::read_file(argv[1]);
  if (!input) return 2;
  const std::vector<uint8_t>& data = *input;
  const size_t chunk = argc > 2 ? static_cast<size_t>(std::strtoull(argv[2], nullptr, 10)) : 0;

  arseg::hevc::ParserOptions options;
  options.trace = true;
  arseg::hevc::StreamParser parser(options);
  bool printed = false;
  if (argc > 3 && std::strcmp(argv[3], "layout") == 0) {
    parser.set_slice_data_hook([&printed](const arseg::hevc::SliceContext& c) {
      if (printed) return;
      printed = true;
      const auto print = [](const char* name, const std::vector<int>& v) {
        std::printf("layout %s", name);
        for (int x : v) std::printf(" %d", x);
        std::printf("\n");
      };
      print("CtbAddrRsToTs", c.layout.CtbAddrRsToTs);
      print("CtbAddrTsToRs", c.layout.CtbAddrTsToRs);
      print("TileId", c.layout.TileId);
      print("colBd", c.layout.colBd);
      print("rowBd", c.layout.rowBd);
      print("MinTbAddrZs", std::vector<int>(c.layout.MinTbAddrZs.begin(), c.layout.MinTbAddrZs.end()));
      std::printf("layout min_tb_width %d\n", c.layout.min_tb_width);
    });
  }
  long errors = 0;
  long pictures = 0;
  const auto drain = [&]() {
    for (const auto& p : parser.take_pictures()) {
      ++pictures;
      std::printf("picture %lld poc %lld type %d slices %zu decodable %d\n", static_cast<long long>(p.decode_index),
                  static_cast<long long>(p.poc), p.nal_unit_type, p.slices.size(), p.decodable ? 1 : 0);
    }
    parser.take_dumps();
  };
  const size_t step = chunk == 0 ? (data.empty() ? 1 : data.size()) : chunk;
  for (size_t off = 0; off < data.size(); off += step) {
    const size_t n = data.size() - off < step ? data.size() - off : step;
    try {
      parser.feed(data.data() + off, n);
    } catch (const arseg::hevc::ParseError& e) {
      ++errors;
      std::printf("error: %s\n", e.what());
    }
    drain();
  }
  try {
    parser.flush();
  } catch (const arseg::hevc::ParseError& e) {
    ++errors;
    std::printf("error: %s\n", e.what());
  }
  drain();
  std::printf("done: %ld pictures, %ld errors\n", pictures, errors);
  return 0;
}
