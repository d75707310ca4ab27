// ringserve-emu-logits: `ringserve-run logits` on the CUDA backend's own sources running on
// the CPU emulation (--device cuda-emu), so the bf16 and tensor-core paths' logits can be
// compared with other implementations without a GPU (tools/gpu/hf_compare.py --emulator).
// Thousands of times slower than the CPU backend: small models only.
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#include "tools/ringserve-run/commands.h"

namespace {

absl::StatusOr<std::unique_ptr<ringserve::kernels::Backend>> MakeEmulated(
    std::string_view device, const ringserve::kernels::BackendOptions& options) {
  if (device != "cuda-emu") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device: this tool runs only cuda-emu, got '", std::string(device), "'"));
  }
  std::unique_ptr<ringserve::kernels::Backend> backend =
      ringserve::kernels::testing::MakeEmulatedCudaBackend(options.cuda_activation_dtype,
                                                           options.cuda_attention_kernel);
  if (backend == nullptr) {
    return absl::FailedPreconditionError(
        "the CUDA emulation needs x86-64 and a build without ASan/TSan");
  }
  return backend;
}

}  // namespace

int main(int argc, char** argv) {
  // RunLogits takes argv[0] as the command's name and the flags after it, which is this
  // program's own argv.
  const absl::Status status = ringserve::tools::RunLogits(argc, argv, MakeEmulated);
  if (!status.ok()) {
    std::cerr << "ringserve-emu-logits: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
