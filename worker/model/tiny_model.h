// The built-in default model: a small Llama with deterministic random weights and a small
// SentencePiece vocabulary (byte fallback, so any UTF-8 text tokenises). It lets the
// server, tests and benchmarks run with no downloaded checkpoint. Its output is noise.
#ifndef RINGSERVE_WORKER_MODEL_TINY_MODEL_H_
#define RINGSERVE_WORKER_MODEL_TINY_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_blocks.h"
#include "worker/model/model_config.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::model {

// dim 64, hidden 172, 4 layers, 8 heads, 4 KV heads, max_seq_len 2048, tied embeddings.
ModelConfig TinyModelConfig();
// <unk>, <s>, </s>, 256 byte tokens, printable ASCII, then common English pieces.
tokenizer::Vocabulary TinyVocabulary();
// The GGUF v3 image (F32 weights, seed fixed: the bytes never change between builds).
std::vector<uint8_t> TinyModelImage();
absl::Status WriteTinyModel(const std::string& path);

// A GGUF of `config`'s shape (head_dim = dim / num_heads) with random matrices in `dtype`
// (F32, F16, BF16 or Q8_0) and the tiny vocabulary cut or padded with unused tokens to its
// size (at least its 259 control and byte tokens):
// checkpoints of real sizes and file dtypes for load and benchmark runs. Its rope is plain
// (no Llama 3 scaling is written).
// With a packing (dtype must then be Q8_0, the type they are served as) the matrices are
// written as such blocks; a K-quant matrix whose rows are not whole 256-value super-blocks
// falls back as llama.cpp's quantizer does (Q2_K, Q3_K to Q4_0; Q4_K to Q5_0; Q5_K to
// Q5_1; Q6_K to Q8_0; IQ4_XS to IQ4_NL).
struct MatrixPacking {
  Packing packing = Packing::kAsStored;
  // When set, output.weight, attn_v and ffn_down take it, as in llama.cpp's _M mixes.
  Packing sensitive = Packing::kAsStored;
};
absl::Status WriteRandomModel(const std::string& path, ModelConfig config, kernels::DType dtype,
                              MatrixPacking packing = {});

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_TINY_MODEL_H_
