// ringserve-model: inspect checkpoints, write the built-in tiny model, tokenize text.
//   ringserve-model info PATH [--tokenizer FILE]
//   ringserve-model info --preset NAME
//   ringserve-model make-tiny --out PATH
//   ringserve-model make-random --preset NAME [--dtype bf16] --out PATH
//   ringserve-model tokenize PATH --text T [--no-bos]
// Exits 1 with the error on stderr for bad input, 2 for bad usage.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "tools/common/arg_parser.h"
#include "worker/model/checkpoint.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"
#include "worker/model/presets.h"
#include "worker/model/tiny_model.h"
#include "worker/model/weight_source.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::model {
namespace {

constexpr char kUsage[] =
    "usage: ringserve-model info PATH [--tokenizer FILE]\n"
    "       ringserve-model info --preset NAME   (a --dummy-weights shape)\n"
    "       ringserve-model make-tiny --out PATH\n"
    "       ringserve-model make-random --preset NAME [--dtype DTYPE] --out PATH\n"
    "         DTYPE: f32, f16, bf16 (default), q8_0, or a GGUF packing:\n"
    "         q4_0, q5_0, q4_1, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, or a mix\n"
    "         like llama.cpp's: q3_k_m, q4_k_m, q5_k_m\n"
    "       ringserve-model tokenize PATH --text TEXT [--no-bos]\n";

constexpr char kDtypeNames[] =
    "f32, f16, bf16, q8_0, q4_0, q5_0, q4_1, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, "
    "q3_k_m, q4_k_m or q5_k_m";

// The K-quant mixes make-random writes: most matrices in the first packing, the output,
// attn_v and ffn_down (which llama.cpp's _M mixes keep finer) in the second.
struct Mix {
  std::string_view name;
  MatrixPacking packing;
};
constexpr Mix kMixes[] = {{"q3_k_m", {Packing::kQ3_K, Packing::kQ4_K}},
                          {"q4_k_m", {Packing::kQ4_K, Packing::kQ6_K}},
                          {"q5_k_m", {Packing::kQ5_K, Packing::kQ6_K}}};

const char* Bool(bool b) { return b ? "true" : "false"; }

std::string VocabSummary(const tokenizer::Vocabulary& v) {
  return absl::StrFormat(
      "%s, %d tokens, %d merges, pre=%s, bos=%d eos=%d unk=%d pad=%d, add_bos=%s add_eos=%s "
      "add_space_prefix=%s",
      v.model == tokenizer::TokenizerModel::kSentencePiece ? "sentencepiece" : "byte-level-bpe",
      v.tokens.size(), v.merges.size(), v.pre_tokenizer, v.bos_id, v.eos_id, v.unk_id, v.pad_id,
      Bool(v.add_bos), Bool(v.add_eos), Bool(v.add_space_prefix));
}

// What a worker with --chat-format auto renders chats in, and the system prompt it adds.
std::string ChatSummary(const tokenizer::Vocabulary& v) {
  auto tok = tokenizer::Tokenizer::Create(v);
  if (!tok.ok()) return "none";
  const tokenizer::ChatFormat format = tokenizer::AutoChatFormat(**tok);
  std::string out(tokenizer::ChatFormatName(format));
  const std::string prompt = tokenizer::DefaultSystemPromptOf(**tok, format);
  if (!prompt.empty()) absl::StrAppend(&out, " (default system prompt: \"", prompt, "\")");
  return out;
}

void PrintConfig(const ModelConfig& c) {
  absl::PrintF(
      "config: dim=%d hidden_dim=%d layers=%d heads=%d kv_heads=%d head_dim=%d vocab=%d "
      "max_seq_len=%d rms_eps=%g rope_theta=%g rotary_dim=%d rope_layout=%s tied=%s "
      "attention_bias=%s qk_norm=%s\n",
      c.dim, c.hidden_dim, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size,
      c.max_seq_len, c.rms_eps, c.rope_theta, c.rotary_dim,
      c.rope_layout == kernels::RopeLayout::kHalves ? "halves" : "adjacent-pairs",
      Bool(c.tied_embeddings), Bool(c.attention_bias), Bool(c.qk_norm));
  const model::RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case model::RopeType::kDefault:
      break;
    case model::RopeType::kLinear:
      absl::PrintF("rope_scaling: linear factor=%g\n", s.factor);
      break;
    case model::RopeType::kLlama3:
      absl::PrintF("rope_scaling: llama3 factor=%g low=%g high=%g original_max_position=%d\n",
                   s.factor, s.low_freq_factor, s.high_freq_factor, s.original_max_position);
      break;
    case model::RopeType::kYarn:
      absl::PrintF(
          "rope_scaling: yarn factor=%g original_max_position=%d beta_fast=%g beta_slow=%g "
          "attention_factor=%g\n",
          s.factor, s.original_max_position, s.beta_fast, s.beta_slow, RopeAttentionFactor(s));
      break;
  }
  if (!c.rope_freq_divisors.empty()) {
    absl::PrintF("rope_freq_divisors: %d values\n", c.rope_freq_divisors.size());
  }
  if (c.sliding_window > 0) {
    std::vector<int> layers;
    for (int l = 0; l < c.num_layers; ++l) {
      if (c.LayerWindow(l) > 0) layers.push_back(l);
    }
    absl::PrintF("sliding_window: %d keys on %s\n", c.sliding_window,
                 c.sliding_layers.empty() ? std::string("every layer")
                                          : absl::StrCat("layers ", absl::StrJoin(layers, ",")));
  }
  absl::PrintF("parameters: %d\n", c.NumParameters());
}

// A GGUF file without a model (a vocabulary-only file) still gets its vocabulary shown.
absl::Status InfoVocabularyOnly(const std::string& path) {
  RS_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  if (!file->tensors().empty()) {
    return absl::InvalidArgumentError(path + ": not a vocabulary-only GGUF file");
  }
  RS_ASSIGN_OR_RETURN(const tokenizer::Vocabulary v, VocabularyFromGguf(*file));
  absl::PrintF("format: gguf (vocabulary only, v%d)\nvocabulary: %s\n", file->version(),
               VocabSummary(v));
  return absl::OkStatus();
}

absl::Status Info(const std::string& path, const std::string& tokenizer_path) {
  auto ckpt = OpenCheckpoint(path, tokenizer_path);
  if (!ckpt.ok()) {
    if (InfoVocabularyOnly(path).ok()) return absl::OkStatus();
    return ckpt.status();
  }
  const Checkpoint& c = **ckpt;
  absl::PrintF("format: %s\npath: %s\narchitecture: %s\n", c.format, c.source_path,
               c.config.architecture);
  PrintConfig(c.config);
  absl::PrintF("vocabulary: %s\n", c.vocabulary ? VocabSummary(*c.vocabulary) : "none");
  absl::PrintF("chat_format: %s\n", c.vocabulary ? ChatSummary(*c.vocabulary) : "none");
  // What a CPU worker holds (serve.sh sizes its CPU workers from it).
  RS_ASSIGN_OR_RETURN(const std::unique_ptr<kernels::Backend> cpu,
                      kernels::CreateBackend("cpu", {.num_threads = 1}));
  const CheckpointWeightSource on_cpu(c, cpu->TakesCompactWeights());
  absl::PrintF("cpu_weight_bytes: %d\n", on_cpu.BytesOn(*cpu).value_or(0));
  absl::PrintF("tensors: %d\n", c.tensors().size());
  for (const HostTensor& t : c.tensors()) {
    const std::string packed =
        t.packing == Packing::kAsStored
            ? ""
            : absl::StrCat(" (", std::string(InfoOf(t.packing).name), " in the file)");
    absl::PrintF("  %-28s %-9s [%s]%s\n", t.name,
                 std::string(kernels::DTypeName(on_cpu.ServedDType(t))),
                 absl::StrJoin(t.shape, ", "), packed);
  }
  return absl::OkStatus();
}

// The shape --dummy-weights --preset NAME serves.
absl::Status InfoPreset(const std::string& name) {
  RS_ASSIGN_OR_RETURN(const ModelConfig config, PresetConfig(name));
  absl::PrintF("preset: %s\narchitecture: %s\n", name, config.architecture);
  PrintConfig(config);
  return absl::OkStatus();
}

// Vocabulary of a checkpoint, or of a vocabulary-only GGUF file.
absl::StatusOr<tokenizer::Vocabulary> LoadVocabulary(const std::string& path) {
  auto ckpt = OpenCheckpoint(path);
  if (ckpt.ok()) {
    if (!(*ckpt)->vocabulary) return absl::NotFoundError(path + ": has no tokenizer");
    return *std::move((*ckpt)->vocabulary);
  }
  auto file = GgufFile::Open(path);
  if (!file.ok() || (*file)->Find("tokenizer.ggml.model") == nullptr) return ckpt.status();
  return VocabularyFromGguf(**file);
}

absl::Status Tokenize(const std::string& path, const std::string& text, bool no_bos) {
  RS_ASSIGN_OR_RETURN(tokenizer::Vocabulary vocab, LoadVocabulary(path));
  RS_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::Create(std::move(vocab)));
  tokenizer::EncodeOptions opts;
  if (no_bos) opts.add_bos = false;
  absl::PrintF("%s\n", absl::StrJoin(tok->Encode(text, opts), " "));
  return absl::OkStatus();
}

absl::Status MakeRandom(const std::string& preset, const std::string& dtype_name,
                        const std::string& out) {
  RS_ASSIGN_OR_RETURN(const ModelConfig config, PresetConfig(preset));
  for (const kernels::DType dtype :
       {kernels::DType::kF32, kernels::DType::kF16, kernels::DType::kBF16, kernels::DType::kQ8_0}) {
    if (kernels::DTypeName(dtype) == dtype_name) return WriteRandomModel(out, config, dtype);
  }
  for (const Mix& mix : kMixes) {
    if (mix.name == dtype_name) {
      return WriteRandomModel(out, config, kernels::DType::kQ8_0, mix.packing);
    }
  }
  if (const std::optional<Packing> packing = PackingNamed(dtype_name)) {
    return WriteRandomModel(out, config, kernels::DType::kQ8_0, {*packing});
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype: expected ", kDtypeNames, ", got '", dtype_name, "'"));
}

int Run(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  std::string out;
  std::string text;
  std::string tokenizer_path;
  std::string preset;
  std::string dtype_name = "bf16";
  bool no_bos = false;
  tools::ArgParser args;
  args.AddString("out", &out, "make-tiny, make-random: output path");
  args.AddString("preset", &preset, "make-random, info: the shape (tiny, llama-110m, ...)");
  args.AddString("dtype", &dtype_name,
                 absl::StrCat("make-random: matrices' dtype (", kDtypeNames, ")"));
  args.AddString("text", &text, "tokenize: the text");
  args.AddString("tokenizer", &tokenizer_path, "info: llama2.c tokenizer file");
  args.AddBool("no-bos", &no_bos, "tokenize: do not prepend BOS");
  if (absl::Status s = args.Parse(argc, argv, 2); !s.ok()) {
    std::cerr << s.message() << "\n" << kUsage;
    return 2;
  }
  const auto& pos = args.positional();
  absl::Status status;
  if (command == "info" && pos.size() == 1) {
    status = Info(pos[0], tokenizer_path);
  } else if (command == "info" && pos.empty() && !preset.empty()) {
    status = InfoPreset(preset);
  } else if (command == "make-tiny" && pos.empty() && !out.empty()) {
    status = WriteTinyModel(out);
    if (status.ok()) absl::PrintF("wrote %s\n", out);
  } else if (command == "make-random" && pos.empty() && !out.empty() && !preset.empty()) {
    status = MakeRandom(preset, dtype_name, out);
    if (status.ok()) absl::PrintF("wrote %s\n", out);
  } else if (command == "tokenize" && pos.size() == 1) {
    status = Tokenize(pos[0], text, no_bos);
  } else {
    std::cerr << kUsage;
    return 2;
  }
  if (!status.ok()) {
    std::cerr << "ringserve-model: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ringserve::model

int main(int argc, char** argv) { return ringserve::model::Run(argc, argv); }
