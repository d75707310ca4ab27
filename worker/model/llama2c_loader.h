// llama2.c checkpoints (karpathy/llama2.c): the legacy "version 0" export (7 int32 header,
// then f32 tensors grouped by kind) and the "version 1" export (magic "ak42", 256-byte
// header, fp32). Tensors become canonical views into the memory map, never copies.
#ifndef RINGSERVE_WORKER_MODEL_LLAMA2C_LOADER_H_
#define RINGSERVE_WORKER_MODEL_LLAMA2C_LOADER_H_

#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "worker/model/checkpoint.h"

namespace ringserve::model {

// Opens `path`. The vocabulary comes from `tokenizer_path` when given (its size must
// match the model's), else from tokenizer.bin or tok512.bin beside the checkpoint,
// whichever has the model's vocab_size tokens; none found -> no vocabulary.
absl::StatusOr<std::unique_ptr<Checkpoint>> LoadLlama2cCheckpoint(
    const std::string& path, const std::string& tokenizer_path = "");

// Adds the tensors and config of the image `bytes` (named `name` in errors) to `ckpt`; the
// bytes must outlive it. For tests and the fuzzer; no tokenizer.
absl::Status ParseLlama2c(std::span<const uint8_t> bytes, const std::string& name,
                          Checkpoint* ckpt);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_LLAMA2C_LOADER_H_
