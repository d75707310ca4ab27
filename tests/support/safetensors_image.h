// Safetensors images for tests: checkpoints and LoRA adapters written from tensors in memory.
#ifndef RINGSERVE_TESTS_SUPPORT_SAFETENSORS_IMAGE_H_
#define RINGSERVE_TESTS_SUPPORT_SAFETENSORS_IMAGE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ringserve::testing {

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", or anything for malformed cases
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};
// A safetensors image; `extra_header_bytes` pads the header (misaligns data when odd).
std::vector<uint8_t> SafetensorsImage(const std::vector<StTensor>& tensors,
                                      int extra_header_bytes = 0);

}  // namespace ringserve::testing

#endif  // RINGSERVE_TESTS_SUPPORT_SAFETENSORS_IMAGE_H_
