#include "worker/tokenizer/tokenizer_json.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/piece_index.h"

namespace ringserve::tokenizer {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxTokens = 1 << 24;
// Unused ids a vocabulary may leave, beyond one per defined token.
constexpr size_t kMaxHoles = 4096;

const json* Member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::optional<std::string> StringMember(const json& obj, const char* key) {
  const json* v = Member(obj, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}

bool BoolMember(const json& obj, const char* key, bool fallback) {
  const json* v = Member(obj, key);
  return v != nullptr && v->is_boolean() ? v->get<bool>() : fallback;
}

// Every component of a pipeline stage, flattening Sequence stages.
void Components(const json* stage, std::vector<const json*>* out) {
  if (stage == nullptr || !stage->is_object()) return;
  out->push_back(stage);
  for (const char* key : {"pretokenizers", "decoders", "processors", "normalizers"}) {
    const json* list = Member(*stage, key);
    if (list == nullptr || !list->is_array()) continue;
    for (const json& item : *list) Components(&item, out);
  }
}

std::vector<const json*> AllComponents(const json& root) {
  std::vector<const json*> all;
  for (const char* stage : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) {
    Components(Member(root, stage), &all);
  }
  return all;
}

bool HasType(const std::vector<const json*>& components, std::string_view type) {
  for (const json* c : components) {
    if (StringMember(*c, "type") == type) return true;
  }
  return false;
}

// The U+2581 space marker anywhere in the pipeline (Metaspace, or Replace " " <-> "▁").
bool UsesSpaceMarker(const std::vector<const json*>& components) {
  for (const json* c : components) {
    const std::string type = StringMember(*c, "type").value_or("");
    if (type == "Metaspace") return true;
    if (type == "Replace" &&
        StringMember(*c, "content").value_or("").find("\xE2\x96\x81") != std::string::npos) {
      return true;
    }
  }
  return false;
}

struct Pieces {
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  absl::flat_hash_map<std::string, int32_t> ids;
};

absl::Status AddPiece(Pieces* p, const std::string& piece, int64_t id, TokenType type,
                      const std::string& name) {
  if (id < 0 || id >= kMaxTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": token '", piece, "' has id ", id, " outside [0, ", kMaxTokens, ")"));
  }
  if (static_cast<size_t>(id) >= p->tokens.size()) {
    p->tokens.resize(id + 1);
    p->types.resize(id + 1, TokenType::kUndefined);
  }
  p->tokens[id] = piece;
  p->types[id] = type;
  p->ids[piece] = static_cast<int32_t>(id);
  return absl::OkStatus();
}

absl::StatusOr<Pieces> ReadPieces(const json& root, const json& model, const std::string& name) {
  const json* vocab = Member(model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": model.vocab is not an object"));
  }
  Pieces p;
  for (const auto& [piece, id] : vocab->items()) {
    if (!id.is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": model.vocab['", piece, "'] is not an integer id"));
    }
    RS_RETURN_IF_ERROR(AddPiece(&p, piece, id.get<int64_t>(), TokenType::kNormal, name));
  }
  if (const json* added = Member(root, "added_tokens"); added != nullptr && added->is_array()) {
    for (const json& t : *added) {
      const std::optional<std::string> content = StringMember(t, "content");
      const json* id = Member(t, "id");
      if (!content || id == nullptr || !id->is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": an added_tokens entry lacks a string content or integer id"));
      }
      const TokenType type =
          BoolMember(t, "special", false) ? TokenType::kControl : TokenType::kUserDefined;
      RS_RETURN_IF_ERROR(AddPiece(&p, *content, id->get<int64_t>(), type, name));
    }
  }
  if (p.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": empty vocab"));
  // Holes in the id space are allowed (each becomes an unused token), but not a few bytes
  // that claim an id in the millions and so cost gigabytes of placeholders.
  const auto defined = static_cast<size_t>(std::count_if(
      p.types.begin(), p.types.end(), [](TokenType t) { return t != TokenType::kUndefined; }));
  if (p.tokens.size() - defined > std::max<size_t>(defined, kMaxHoles)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ids reach ", p.tokens.size() - 1, " but only ", defined,
                     " tokens are defined; at most half of the id space may be unused"));
  }
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    if (p.types[i] != TokenType::kUndefined) continue;
    p.tokens[i] = absl::StrCat("[UNUSED_", i, "]");  // a hole in the id space
    p.types[i] = TokenType::kUnused;
  }
  return p;
}

// merges: "left right" strings (tokenizers < 0.20) or [left, right] pairs (>= 0.20).
absl::StatusOr<std::vector<std::string>> ReadMerges(const json& model, const std::string& name) {
  std::vector<std::string> merges;
  const json* list = Member(model, "merges");
  if (list == nullptr) return merges;
  if (!list->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": model.merges is not an array"));
  }
  merges.reserve(list->size());
  for (const json& m : *list) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(absl::StrCat(m[0].get<std::string>(), " ", m[1].get<std::string>()));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": model.merges[", merges.size(), "] is neither \"a b\" nor [a, b]"));
    }
  }
  return merges;
}

// The GGUF pre-tokeniser name whose split equals the file's Split regexes.
absl::StatusOr<std::string> PreTokenizerName(const std::vector<const json*>& components,
                                             const std::string& name) {
  constexpr std::string_view kLlama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  constexpr std::string_view kQwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  constexpr std::string_view kGpt2 =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
  constexpr std::string_view kTekken =
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}"
      "\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}"
      "\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  std::vector<std::string> patterns;
  bool individual_digits = false;
  for (const json* c : components) {
    const std::string type = StringMember(*c, "type").value_or("");
    if (type == "Digits") individual_digits = BoolMember(*c, "individual_digits", false);
    const json* pattern = Member(*c, "pattern");
    if (type != "Split" || pattern == nullptr) continue;
    const std::optional<std::string> regex = StringMember(*pattern, "Regex");
    if (regex) patterns.push_back(*regex);
  }
  if (patterns.empty()) return individual_digits ? "starcoder" : "gpt2";
  if (patterns.size() == 1 && patterns[0] == kLlama3) return "llama-bpe";
  if (patterns.size() == 1 && patterns[0] == kQwen2) return "qwen2";
  if (patterns.size() == 1 && patterns[0] == kGpt2) return "gpt2";
  if (patterns.size() == 1 && patterns[0] == kTekken) return "tekken";
  if (patterns.size() == 5 && patterns[1].starts_with("\\s?[A-Za-z\xC2\xB5")) {
    return "deepseek-llm";
  }
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": pre_tokenizer Split pattern '", patterns[0],
                   "' matches no implemented pre-tokenizer (gpt2, llama-bpe, qwen2, "
                   "deepseek-llm, starcoder, tekken)"));
}

int32_t FirstPresent(const Pieces& p, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (const auto it = p.ids.find(ToAbsl(n)); it != p.ids.end()) return it->second;
  }
  return -1;
}

// BOS from a TemplateProcessing post-processor ("single": [{SpecialToken: {id: "<s>"}},
// {Sequence: {id: A}}]): its presence is what makes HF add BOS.
int32_t TemplateBos(const std::vector<const json*>& components, const Pieces& p) {
  for (const json* c : components) {
    if (StringMember(*c, "type") != "TemplateProcessing") continue;
    const json* single = Member(*c, "single");
    if (single == nullptr || !single->is_array() || single->empty()) continue;
    const json* special = Member((*single)[0], "SpecialToken");
    if (special == nullptr) continue;
    const std::optional<std::string> id = StringMember(*special, "id");
    if (id) return FirstPresent(p, {*id});
  }
  return -1;
}

// The special token a TemplateProcessing post-processor puts after the text ("$A <tok>":
// Qwen3-Embedding's end-of-text, the token its embedding is read at); -1 for none.
int32_t TemplateEos(const std::vector<const json*>& components, const Pieces& p) {
  for (const json* c : components) {
    if (StringMember(*c, "type") != "TemplateProcessing") continue;
    const json* single = Member(*c, "single");
    if (single == nullptr || !single->is_array() || single->size() < 2) continue;
    const json* special = Member(single->back(), "SpecialToken");
    if (special == nullptr || Member((*single)[single->size() - 2], "Sequence") == nullptr) {
      continue;
    }
    const std::optional<std::string> id = StringMember(*special, "id");
    if (id) return FirstPresent(p, {*id});
  }
  return -1;
}

// SentencePiece scores that reproduce HF's merge order under score-driven merging: a
// piece made by merge rank r scores -r; pieces no merge makes come after all merges.
std::vector<float> SentencePieceScores(const Pieces& p, const std::vector<std::string>& merges) {
  const auto n = static_cast<int64_t>(p.tokens.size());
  std::vector<float> scores(p.tokens.size());
  for (int64_t id = 0; id < n; ++id) {
    scores[id] = static_cast<float>(-(static_cast<int64_t>(merges.size()) + id));
  }
  for (int64_t rank = static_cast<int64_t>(merges.size()) - 1; rank >= 0; --rank) {
    std::string merged = merges[rank];
    const size_t space = merged.find(' ', 1);
    if (space == std::string::npos) continue;
    merged.erase(space, 1);
    if (const auto it = p.ids.find(merged); it != p.ids.end()) {
      scores[it->second] = static_cast<float>(-rank);  // descending loop: lowest rank wins
    }
  }
  return scores;
}

absl::Status FillSentencePiece(const json& model, const std::vector<const json*>& components,
                               Vocabulary* v) {
  Pieces p{v->tokens, v->types, {}};
  for (size_t i = 0; i < v->tokens.size(); ++i) p.ids[v->tokens[i]] = static_cast<int32_t>(i);
  for (size_t i = 0; i < v->tokens.size(); ++i) {
    const std::string& t = v->tokens[i];
    if (v->types[i] == TokenType::kNormal && t.size() == 6 && t.starts_with("<0x") &&
        t.back() == '>') {
      v->types[i] = TokenType::kByte;
    }
  }
  if (const std::optional<std::string> unk = StringMember(model, "unk_token")) {
    v->unk_id = FirstPresent(p, {*unk});
    if (v->unk_id >= 0) v->types[v->unk_id] = TokenType::kUnknown;
  }
  v->scores = SentencePieceScores(p, v->merges);
  v->merges.clear();  // SentencePiece merging is score-driven
  bool prefix = false;
  for (const json* c : components) {
    const std::string type = StringMember(*c, "type").value_or("");
    if (type == "Prepend") prefix = true;
    if (type == "Metaspace") {
      prefix = BoolMember(*c, "add_prefix_space", true) &&
               StringMember(*c, "prepend_scheme").value_or("always") != "never";
    }
  }
  v->add_space_prefix = prefix;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Vocabulary> ParseTokenizerJson(std::string_view json_text, const std::string& name) {
  const json root = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not a JSON object"));
  }
  const json* model = Member(root, "model");
  if (model == nullptr || !model->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no \"model\" object"));
  }
  const std::string type = StringMember(*model, "type").value_or("BPE");
  if (type != "BPE") {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": model.type '", type, "' is not supported (only BPE)"));
  }
  RS_ASSIGN_OR_RETURN(Pieces pieces, ReadPieces(root, *model, name));
  Vocabulary v;
  RS_ASSIGN_OR_RETURN(v.merges, ReadMerges(*model, name));
  const std::vector<const json*> components = AllComponents(root);
  const int32_t template_bos = TemplateBos(components, pieces);
  v.bos_id = template_bos >= 0 ? template_bos
                               : FirstPresent(pieces, {"<s>", "<|begin_of_text|>",
                                                       "<\xEF\xBD\x9C"
                                                       "begin\xE2\x96\x81of"
                                                       "\xE2\x96\x81sentence\xEF\xBD\x9C>"});
  v.eos_id = FirstPresent(pieces, {"</s>", "<|end_of_text|>", "<|endoftext|>",
                                   "<\xEF\xBD\x9C"
                                   "end\xE2\x96\x81of\xE2\x96\x81sentence"
                                   "\xEF\xBD\x9C>"});
  for (int32_t id : {FirstPresent(pieces, {"<|eot_id|>"}), FirstPresent(pieces, {"<|im_end|>"}),
                     FirstPresent(pieces, {"<|eom_id|>"}), FirstPresent(pieces, {"<|EOT|>"})}) {
    if (id >= 0 && id != v.eos_id) v.eot_ids.push_back(id);
  }
  v.pad_id = FirstPresent(pieces, {"<pad>", "[PAD]", "<|pad|>"});
  // A template that ends the text with a token appends it to every new context, as
  // transformers' tokenizer does; ringserve appends the end-of-sequence id, so only that one.
  const int32_t template_eos = TemplateEos(components, pieces);
  const bool eos_appended = template_eos >= 0 && template_eos == v.eos_id;
  v.tokens = std::move(pieces.tokens);
  v.types = std::move(pieces.types);
  if (HasType(components, "ByteLevel")) {
    v.model = TokenizerModel::kByteLevelBpe;
    RS_ASSIGN_OR_RETURN(v.pre_tokenizer, PreTokenizerName(components, name));
    v.add_bos = template_bos >= 0;
    v.add_eos = eos_appended;
    v.add_space_prefix = false;
    if (v.merges.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": byte-level BPE without merges"));
    }
    return v;
  }
  if (BoolMember(*model, "byte_fallback", false) || UsesSpaceMarker(components)) {
    v.model = TokenizerModel::kSentencePiece;
    v.add_bos = template_bos >= 0 || (!Member(root, "post_processor") && v.bos_id >= 0);
    v.add_eos = eos_appended;
    RS_RETURN_IF_ERROR(FillSentencePiece(*model, components, &v));
    return v;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      name, ": BPE without a ByteLevel or Metaspace/byte_fallback pipeline is not supported"));
}

absl::StatusOr<Vocabulary> ReadTokenizerJson(const std::string& path) {
  RS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  const std::span<const uint8_t> bytes = file->bytes();
  return ParseTokenizerJson(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
}

}  // namespace ringserve::tokenizer
