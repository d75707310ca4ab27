// Layouts follow llama2.c: run.c memory_map_weights() for the legacy export and
// export.py version1_export() for "ak42" v1 files.
#include "worker/model/llama2c_loader.h"

#include <sys/stat.h>

#include <climits>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/tokenizer/llama2c_vocab.h"

namespace ringserve::model {
namespace {

constexpr uint32_t kVersion1Magic = 0x616b3432;  // "ak42"
constexpr size_t kLegacyHeaderBytes = 7 * sizeof(int32_t);
constexpr size_t kVersion1HeaderBytes = 256;

// One run of f32 tensors: `per_layer` kinds hold num_layers tensors back to back.
struct Segment {
  const char* kind;  // canonical name without "blk.N." and ".weight"
  bool per_layer;
  std::vector<int64_t> shape;
};

struct Header {
  ModelConfig config;
  size_t header_bytes = 0;
  bool legacy = true;
};

absl::Status Error(const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

absl::StatusOr<Header> ReadHeader(std::span<const uint8_t> bytes, const std::string& name) {
  Header h;
  uint32_t magic = 0;
  if (bytes.size() >= 4) std::memcpy(&magic, bytes.data(), 4);
  int32_t fields[7];
  if (magic == kVersion1Magic) {
    int32_t version = 0;
    if (bytes.size() < kVersion1HeaderBytes) return Error(name, "truncated llama2.c v1 header");
    std::memcpy(&version, bytes.data() + 4, 4);
    if (version != 1) {
      return Error(name, absl::StrCat("unsupported llama2.c export version ", version,
                                      " (0 and 1, fp32, are)"));
    }
    std::memcpy(fields, bytes.data() + 8, sizeof(fields));
    h.header_bytes = kVersion1HeaderBytes;
    h.legacy = false;
    h.config.tied_embeddings = bytes[8 + sizeof(fields)] != 0;
  } else {
    if (bytes.size() < kLegacyHeaderBytes) return Error(name, "truncated llama2.c header");
    std::memcpy(fields, bytes.data(), sizeof(fields));
    h.header_bytes = kLegacyHeaderBytes;
    if (fields[5] == INT_MIN) return Error(name, "invalid vocab_size");
    // A negative vocab_size marks an untied classifier stored at the end.
    h.config.tied_embeddings = fields[5] > 0;
    fields[5] = fields[5] < 0 ? -fields[5] : fields[5];
  }
  ModelConfig& c = h.config;
  c.architecture = "llama";
  c.dim = fields[0];
  c.hidden_dim = fields[1];
  c.num_layers = fields[2];
  c.num_heads = fields[3];
  c.num_kv_heads = fields[4];
  c.vocab_size = fields[5];
  c.max_seq_len = fields[6];
  c.rms_eps = 1e-5F;
  c.rope_theta = 10000.0F;
  c.rope_layout = kernels::RopeLayout::kAdjacentPairs;
  if (absl::Status s = c.Validate(); !s.ok()) return Error(name, s.message());
  return h;
}

std::vector<Segment> Layout(const ModelConfig& c, bool legacy) {
  const int64_t d = c.dim, f = c.hidden_dim, v = c.vocab_size;
  const int64_t q = int64_t{c.num_heads} * c.head_dim, kv = int64_t{c.num_kv_heads} * c.head_dim;
  const Segment embd{"token_embd", false, {v, d}}, norm{"output_norm", false, {d}};
  const Segment att_norm{"attn_norm", true, {d}}, ffn_norm{"ffn_norm", true, {d}};
  const std::vector<Segment> matrices = {{"attn_q", true, {q, d}},   {"attn_k", true, {kv, d}},
                                         {"attn_v", true, {kv, d}},  {"attn_output", true, {d, q}},
                                         {"ffn_gate", true, {f, d}}, {"ffn_down", true, {d, f}},
                                         {"ffn_up", true, {f, d}}};
  std::vector<Segment> out;
  if (legacy) {
    out = {embd, att_norm};
    out.insert(out.end(), matrices.begin(), matrices.begin() + 4);
    out.push_back(ffn_norm);
    out.insert(out.end(), matrices.begin() + 4, matrices.end());
    out.push_back(norm);
  } else {
    out = {att_norm, ffn_norm, norm, embd};
    out.insert(out.end(), matrices.begin(), matrices.end());
  }
  return out;
}

// Adds views for `seg` at `*offset`, advancing it; errors when the file is too short.
absl::Status AddSegment(std::span<const uint8_t> bytes, const std::string& name, const Segment& seg,
                        int num_layers, size_t* offset, Checkpoint* ckpt) {
  int64_t elements = 1;
  for (int64_t dim : seg.shape) elements *= dim;  // each dim < 2^31, at most two dims
  const auto tensor_bytes = static_cast<uint64_t>(elements) * sizeof(float);
  const int count = seg.per_layer ? num_layers : 1;
  for (int i = 0; i < count; ++i) {
    const std::string tensor = seg.per_layer ? absl::StrCat("blk.", i, ".", seg.kind, ".weight")
                                             : absl::StrCat(seg.kind, ".weight");
    if (tensor_bytes > bytes.size() - *offset) {
      return Error(name,
                   absl::StrCat("truncated: tensor '", tensor, "' needs ", tensor_bytes,
                                " bytes at offset ", *offset, " but the file has ", bytes.size()));
    }
    ckpt->AddTensor({tensor, kernels::DType::kF32, seg.shape, bytes.data() + *offset,
                     static_cast<size_t>(tensor_bytes)});
    *offset += tensor_bytes;
  }
  return absl::OkStatus();
}

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The vocabulary named by `explicit_path`, else the sibling tokenizer whose size fits.
absl::StatusOr<std::optional<tokenizer::Vocabulary>> FindTokenizer(const std::string& model_path,
                                                                   const std::string& explicit_path,
                                                                   int vocab_size) {
  if (!explicit_path.empty()) {
    RS_ASSIGN_OR_RETURN(tokenizer::Vocabulary v, tokenizer::ReadLlama2cTokenizer(explicit_path));
    if (v.tokens.size() != static_cast<size_t>(vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat(explicit_path, ": tokenizer has ",
                                                     v.tokens.size(), " tokens but ", model_path,
                                                     " has a vocabulary of ", vocab_size));
    }
    return std::optional<tokenizer::Vocabulary>(std::move(v));
  }
  const size_t slash = model_path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : model_path.substr(0, slash);
  for (const char* candidate : {"tokenizer.bin", "tok512.bin"}) {
    const std::string path = absl::StrCat(dir, "/", candidate);
    if (!IsRegularFile(path)) continue;
    auto v = tokenizer::ReadLlama2cTokenizer(path);
    if (v.ok() && v->tokens.size() == static_cast<size_t>(vocab_size)) {
      return std::optional<tokenizer::Vocabulary>(*std::move(v));
    }
  }
  return std::optional<tokenizer::Vocabulary>();
}

}  // namespace

absl::Status ParseLlama2c(std::span<const uint8_t> bytes, const std::string& name,
                          Checkpoint* ckpt) {
  RS_ASSIGN_OR_RETURN(const Header h, ReadHeader(bytes, name));
  const ModelConfig& c = h.config;
  ckpt->config = c;
  ckpt->source_path = name;
  ckpt->format = "llama2c";
  size_t offset = h.header_bytes;
  for (const Segment& seg : Layout(c, h.legacy)) {
    RS_RETURN_IF_ERROR(AddSegment(bytes, name, seg, c.num_layers, &offset, ckpt));
  }
  // Legacy files keep run.c's RoPE tables (freq_cis_real, freq_cis_imag) before wcls.
  // Both terms stay below 2^64: each factor is below 2^31 and head_dim / 2 below 2^30.
  const unsigned __int128 rope_bytes =
      h.legacy ? static_cast<unsigned __int128>(c.max_seq_len) * (c.head_dim / 2) * 8 : 0;
  const unsigned __int128 cls_bytes =
      c.tied_embeddings ? 0 : static_cast<unsigned __int128>(c.vocab_size) * c.dim * 4;
  const unsigned __int128 left = bytes.size() - offset;
  const bool fits =
      c.tied_embeddings ? (left == 0 || left == rope_bytes) : left == rope_bytes + cls_bytes;
  if (!fits) {
    return Error(
        name, absl::StrCat("file size ", bytes.size(), " does not match the header: ", "expected ",
                           static_cast<uint64_t>(offset + rope_bytes + cls_bytes), " bytes"));
  }
  offset += static_cast<size_t>(rope_bytes);
  if (!c.tied_embeddings) {
    RS_RETURN_IF_ERROR(
        AddSegment(bytes, name, {"output", false, {c.vocab_size, c.dim}}, 0, &offset, ckpt));
  }
  return ckpt->ValidateTensors();
}

absl::StatusOr<std::unique_ptr<Checkpoint>> LoadLlama2cCheckpoint(
    const std::string& path, const std::string& tokenizer_path) {
  RS_ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(path));
  auto ckpt = std::make_unique<Checkpoint>();
  RS_RETURN_IF_ERROR(ParseLlama2c(mapping->bytes(), path, ckpt.get()));
  ckpt->KeepMapped(std::move(mapping));
  RS_ASSIGN_OR_RETURN(ckpt->vocabulary,
                      FindTokenizer(path, tokenizer_path, ckpt->config.vocab_size));
  return ckpt;
}

}  // namespace ringserve::model
