// GGUF -> Checkpoint for general.architecture "llama" (and "mistral", the same graph).
// Tensor data stays in the file's memory map; names are already canonical.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_LOADER_H_
#define RINGSERVE_WORKER_MODEL_GGUF_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/model/checkpoint.h"
#include "worker/model/gguf_reader.h"

namespace ringserve::model {

// Opens and converts `path`.
absl::StatusOr<std::unique_ptr<Checkpoint>> LoadGgufCheckpoint(const std::string& path);

// Converts a parsed file. Takes the file's mapping when it has one; for an in-memory image
// (GgufFile::Parse) the caller keeps the bytes alive as long as the checkpoint.
absl::StatusOr<std::unique_ptr<Checkpoint>> CheckpointFromGguf(GgufFile& file);

// The llama.* hyper-parameters. vocab_size comes from token_embd.weight's rows (or the
// token list when the file has no tensors); the result is Validate()d.
absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_LOADER_H_
