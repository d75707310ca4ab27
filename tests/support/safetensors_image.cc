#include "tests/support/safetensors_image.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace ringserve::testing {

std::vector<uint8_t> SafetensorsImage(const std::vector<StTensor>& tensors,
                                      int extra_header_bytes) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::string shape;
    for (size_t i = 0; i < t.shape.size(); ++i) absl::StrAppend(&shape, i ? "," : "", t.shape[i]);
    absl::StrAppend(&header, ",\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[", shape,
                    "],\"data_offsets\":[", offset, ",", offset + t.data.size(), "]}");
    offset += t.data.size();
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  header.append(extra_header_bytes, ' ');
  const uint64_t header_size = header.size();
  size_t total = sizeof(header_size) + header.size();
  for (const auto& t : tensors) total += t.data.size();
  std::vector<uint8_t> out(total);
  uint8_t* at = out.data();
  std::memcpy(at, &header_size, sizeof(header_size));  // little-endian hosts only
  at += sizeof(header_size);
  std::memcpy(at, header.data(), header.size());
  at += header.size();
  for (const auto& t : tensors) {
    if (!t.data.empty()) std::memcpy(at, t.data.data(), t.data.size());
    at += t.data.size();
  }
  return out;
}

}  // namespace ringserve::testing
