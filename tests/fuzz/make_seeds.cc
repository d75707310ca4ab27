// Writes the gguf_fuzzer seed corpus into argv[1]: small valid models in every dtype,
// vocabulary-only files (SentencePiece and byte-level BPE) and a v2 file. Generated at
// test time so no binaries are committed.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/model/gguf_writer.h"

namespace ringserve::model {
namespace {

GgufWriter SmallModel(kernels::DType dtype, bool tied) {
  constexpr int kDim = 32, kHidden = 32, kVocab = 6, kHeads = 2;
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.context_length", 64);
  w.SetUint32("llama.embedding_length", kDim);
  w.SetUint32("llama.feed_forward_length", kHidden);
  w.SetUint32("llama.block_count", 1);
  w.SetUint32("llama.attention.head_count", kHeads);
  w.SetUint32("llama.attention.head_count_kv", 1);
  w.SetFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5F);
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens",
                   {"<unk>", "<s>", "</s>", "<0x41>", "a", "\xE2\x96\x81"});
  w.SetFloat32Array("tokenizer.ggml.scores", {0, 0, 0, 0, -1, -2});
  w.SetInt32Array("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1});
  w.SetUint32("tokenizer.ggml.bos_token_id", 1);
  const int kv = kDim / kHeads;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"token_embd.weight", {kVocab, kDim}},      {"output_norm.weight", {kDim}},
      {"blk.0.attn_norm.weight", {kDim}},         {"blk.0.attn_q.weight", {kDim, kDim}},
      {"blk.0.attn_k.weight", {kv, kDim}},        {"blk.0.attn_v.weight", {kv, kDim}},
      {"blk.0.attn_output.weight", {kDim, kDim}}, {"blk.0.ffn_norm.weight", {kDim}},
      {"blk.0.ffn_gate.weight", {kHidden, kDim}}, {"blk.0.ffn_up.weight", {kHidden, kDim}},
      {"blk.0.ffn_down.weight", {kDim, kHidden}}};
  for (const auto& [name, shape] : shapes) {
    std::vector<float> v(shape.size() == 1 ? shape[0] : shape[0] * shape[1], 0.5F);
    (void)w.AddTensor(name, shape, shape.size() == 1 ? kernels::DType::kF32 : dtype, v);
  }
  if (!tied)
    (void)w.AddTensor("output.weight", {kVocab, kDim}, dtype,
                      std::vector<float>(kVocab * kDim, 0.25F));
  return w;
}

bool Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace
}  // namespace ringserve::model

int main(int argc, char** argv) {
  using namespace ringserve::model;  // NOLINT(google-build-using-namespace)
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  bool ok = true;
  int i = 0;
  for (auto dtype : {ringserve::kernels::DType::kF32, ringserve::kernels::DType::kF16,
                     ringserve::kernels::DType::kBF16, ringserve::kernels::DType::kQ8_0}) {
    const bool tied = i % 2 == 0;
    ok &= Write(absl::StrCat(dir, "/model", i, ".gguf"), SmallModel(dtype, tied).Build());
    ++i;
  }
  ok &= Write(dir + "/model_v2.gguf", SmallModel(ringserve::kernels::DType::kF32, true).Build(2));
  GgufWriter spm;
  spm.SetString("tokenizer.ggml.model", "llama");
  spm.SetStringArray("tokenizer.ggml.tokens", {"<unk>", "a", "b"});
  ok &= Write(dir + "/vocab_spm.gguf", spm.Build());
  GgufWriter bpe;
  bpe.SetString("tokenizer.ggml.model", "gpt2");
  bpe.SetString("tokenizer.ggml.pre", "llama-bpe");
  bpe.SetStringArray("tokenizer.ggml.tokens", {"a", "b", "ab"});
  bpe.SetStringArray("tokenizer.ggml.merges", {"a b"});
  bpe.SetUint32("tokenizer.ggml.eos_token_id", 2);
  ok &= Write(dir + "/vocab_bpe.gguf", bpe.Build());
  if (!ok) std::fprintf(stderr, "cannot write seeds to %s\n", dir.c_str());
  return ok ? 0 : 1;
}
