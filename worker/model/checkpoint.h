// A model checkpoint opened from disk: its config, its tensors (memory-mapped, never
// copied), and its vocabulary when the file carries one. Loaders for each format produce
// this; the model uploads the tensors to a backend.
#ifndef RINGSERVE_WORKER_MODEL_CHECKPOINT_H_
#define RINGSERVE_WORKER_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/mapped_file.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_blocks.h"
#include "worker/model/model_config.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::model {

// A tensor inside a mapped file. Shape is row-major: for a matrix, shape = {rows, cols}
// with rows = output features (GGUF's ne[] reversed; PyTorch order as-is).
struct HostTensor {
  std::string name;
  kernels::DType dtype = kernels::DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into a MappedFile owned by the Checkpoint
  size_t bytes = 0;
  // Blocks of another format that reading widens to `dtype` (GGUF Q4_0 ... Q6_K as Q8_0;
  // gguf_blocks.h), or Q4_0 ... Q5_K to their affine dtype for a backend that takes those:
  // CheckpointWeightSource does it one tensor at a time.
  Packing packing = Packing::kAsStored;

  int64_t NumElements() const;
};

// Tensor names are canonical (GGUF style) whatever the file format:
//   token_embd.weight [vocab, dim], output_norm.weight [dim], output.weight [vocab, dim]
//   (absent when tied), blk.N.attn_norm.weight [dim], blk.N.attn_q.weight [Hq*hd, dim],
//   blk.N.attn_k.weight [Hkv*hd, dim], blk.N.attn_v.weight [Hkv*hd, dim],
//   blk.N.attn_output.weight [dim, Hq*hd], blk.N.ffn_norm.weight [dim],
//   blk.N.ffn_gate.weight [hidden, dim], blk.N.ffn_up.weight [hidden, dim],
//   blk.N.ffn_down.weight [dim, hidden].
class Checkpoint {
 public:
  ModelConfig config;
  // Present when the file carries a tokenizer (GGUF metadata, or a tokenizer file found
  // next to the checkpoint).
  std::optional<tokenizer::Vocabulary> vocabulary;
  std::string source_path;
  std::string format;  // "gguf", "llama2c", "safetensors"

  // Finds a tensor by canonical name; NOT_FOUND names the file and the tensor.
  absl::StatusOr<const HostTensor*> Find(const std::string& name) const;
  // Like Find, and checks the shape; INVALID_ARGUMENT names file, tensor, both shapes.
  absl::StatusOr<const HostTensor*> FindWithShape(const std::string& name,
                                                  const std::vector<int64_t>& shape) const;
  const std::vector<HostTensor>& tensors() const { return tensors_; }
  // Checks that every canonical tensor `config` needs is present with its shape and a
  // supported dtype; loaders call it last so a bad file fails at open, not at upload.
  absl::Status ValidateTensors() const;

  void AddTensor(HostTensor tensor);
  void KeepMapped(std::unique_ptr<MappedFile> file) { files_.push_back(std::move(file)); }
  // Storage for tensors a loader had to synthesise (e.g. a permuted copy).
  void* AllocateOwned(size_t bytes);

 private:
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<std::unique_ptr<uint8_t[]>> owned_;
  std::vector<HostTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// OK unless `tensor` (a name in `file`) is a bias the model does not apply: all but the
// Q/K/V projections' (attn_q.bias, ... or q_proj.bias, ...). Skipping one would run another
// model than the file holds, so it is UNIMPLEMENTED, naming both.
absl::Status CheckBiasIsServed(const std::string& file, const std::string& tensor);

// Opens a checkpoint of any supported format: a .gguf file, a llama2.c .bin (tokenizer
// from `tokenizer_path`, or tokenizer.bin / tok512.bin beside it when empty), or a
// Hugging Face directory (config.json + model.safetensors or an index of shards,
// tokenizer.json when present).
absl::StatusOr<std::unique_ptr<Checkpoint>> OpenCheckpoint(const std::string& path,
                                                           const std::string& tokenizer_path = "");

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_CHECKPOINT_H_
