#include "worker/model/gguf_vocab.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ringserve::model {
namespace {

using tokenizer::TokenizerModel;
using tokenizer::TokenType;
using tokenizer::Vocabulary;

// Reads an optional key: absent -> keeps `*out`; present with the wrong type -> error.
template <typename T, typename Getter>
absl::Status Optional(const GgufFile& file, const std::string& key, Getter get, T* out) {
  if (file.Find(key) == nullptr) return absl::OkStatus();
  RS_ASSIGN_OR_RETURN(*out, (file.*get)(key));
  return absl::OkStatus();
}

absl::Status ReadSpecialIds(const GgufFile& file, Vocabulary* v) {
  const auto n = static_cast<int64_t>(v->tokens.size());
  struct Special {
    const char* key;
    int32_t* id;
  };
  int32_t eot = -1;
  for (const Special& s : {Special{"tokenizer.ggml.bos_token_id", &v->bos_id},
                           Special{"tokenizer.ggml.eos_token_id", &v->eos_id},
                           Special{"tokenizer.ggml.unknown_token_id", &v->unk_id},
                           Special{"tokenizer.ggml.padding_token_id", &v->pad_id},
                           Special{"tokenizer.ggml.eot_token_id", &eot}}) {
    int64_t id = *s.id;
    RS_RETURN_IF_ERROR(Optional(file, s.key, &GgufFile::GetInt, &id));
    if (id == 0xFFFFFFFF) id = -1;  // llama.cpp writes "none" as uint32 -1
    if (id < -1 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.name(), ": ", s.key, " = ", id, " is outside the vocabulary of ", n));
    }
    *s.id = static_cast<int32_t>(id);
  }
  if (eot >= 0) v->eot_ids.push_back(eot);
  return absl::OkStatus();
}

absl::Status ReadTokenArrays(const GgufFile& file, Vocabulary* v) {
  RS_ASSIGN_OR_RETURN(v->tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  const size_t n = v->tokens.size();
  if (n == 0) return absl::InvalidArgumentError(file.name() + ": tokenizer.ggml.tokens is empty");
  std::vector<double> scores;
  RS_RETURN_IF_ERROR(Optional(file, "tokenizer.ggml.scores", &GgufFile::GetFloatArray, &scores));
  if (!scores.empty() && scores.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(file.name(), ": tokenizer.ggml.scores has ",
                                                   scores.size(), " entries for ", n, " tokens"));
  }
  v->scores.assign(scores.begin(), scores.end());
  std::vector<int64_t> types;
  RS_RETURN_IF_ERROR(Optional(file, "tokenizer.ggml.token_type", &GgufFile::GetIntArray, &types));
  if (!types.empty() && types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(file.name(), ": tokenizer.ggml.token_type has ",
                                                   types.size(), " entries for ", n, " tokens"));
  }
  v->types.reserve(types.size());
  for (int64_t t : types) {
    if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.name(), ": tokenizer.ggml.token_type has unknown type ", t));
    }
    v->types.push_back(static_cast<TokenType>(t));
  }
  return Optional(file, "tokenizer.ggml.merges", &GgufFile::GetStringArray, &v->merges);
}

}  // namespace

absl::StatusOr<Vocabulary> VocabularyFromGguf(const GgufFile& file) {
  Vocabulary v;
  RS_ASSIGN_OR_RETURN(const std::string model, file.GetString("tokenizer.ggml.model"));
  if (model == "llama") {
    v.model = TokenizerModel::kSentencePiece;
    v.add_bos = true;
    v.add_space_prefix = true;
  } else if (model == "gpt2") {
    v.model = TokenizerModel::kByteLevelBpe;
    v.add_bos = false;
    v.add_space_prefix = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(file.name(), ": tokenizer.ggml.model '", model,
                                                   "' is not supported (llama, gpt2 are)"));
  }
  RS_RETURN_IF_ERROR(ReadTokenArrays(file, &v));
  if (v.model == TokenizerModel::kByteLevelBpe && v.merges.empty()) {
    return absl::InvalidArgumentError(file.name() +
                                      ": gpt2 tokenizer without tokenizer.ggml.merges");
  }
  RS_RETURN_IF_ERROR(Optional(file, "tokenizer.ggml.pre", &GgufFile::GetString, &v.pre_tokenizer));
  RS_RETURN_IF_ERROR(ReadSpecialIds(file, &v));
  RS_RETURN_IF_ERROR(
      Optional(file, "tokenizer.ggml.add_bos_token", &GgufFile::GetBool, &v.add_bos));
  RS_RETURN_IF_ERROR(
      Optional(file, "tokenizer.ggml.add_eos_token", &GgufFile::GetBool, &v.add_eos));
  RS_RETURN_IF_ERROR(
      Optional(file, "tokenizer.ggml.add_space_prefix", &GgufFile::GetBool, &v.add_space_prefix));
  RS_RETURN_IF_ERROR(
      Optional(file, "tokenizer.chat_template", &GgufFile::GetString, &v.chat_template));
  return v;
}

}  // namespace ringserve::model
