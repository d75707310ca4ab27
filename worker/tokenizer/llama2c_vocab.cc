#include "worker/tokenizer/llama2c_vocab.h"

#include <cstring>
#include <memory>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "worker/tokenizer/piece_index.h"

namespace ringserve::tokenizer {
namespace {

// A bounds-checked little-endian reader over the file's bytes.
class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}
  bool AtEnd() const { return pos_ == bytes_.size(); }
  size_t pos() const { return pos_; }

  template <typename T>
  absl::StatusOr<T> Read(std::string_view what) {
    T v;
    if (bytes_.size() - pos_ < sizeof(T)) return Truncated(what, sizeof(T));
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // host is little-endian (x86/ARM)
    pos_ += sizeof(T);
    return v;
  }

  absl::StatusOr<std::string> ReadBytes(size_t n, std::string_view what) {
    if (bytes_.size() - pos_ < n) return Truncated(what, n);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  absl::Status Truncated(std::string_view what, size_t n) const {
    return absl::InvalidArgumentError(absl::StrCat(
        name_, ": truncated llama2.c tokenizer: ", ToAbsl(what), " needs ", n, " bytes at offset ",
        pos_, " but the file has ", bytes_.size() - pos_, " left"));
  }

  std::span<const uint8_t> bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

TokenType TypeOfPiece(int32_t id, const std::string& piece) {
  if (id == 0) return TokenType::kUnknown;
  if (id == 1 || id == 2) return TokenType::kControl;
  if (piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>') {
    return TokenType::kByte;
  }
  return TokenType::kNormal;
}

}  // namespace

absl::StatusOr<Vocabulary> ParseLlama2cTokenizer(std::span<const uint8_t> bytes,
                                                 const std::string& name) {
  Reader reader(bytes, name);
  RS_ASSIGN_OR_RETURN(const int32_t max_token_length, reader.Read<int32_t>("max_token_length"));
  if (max_token_length <= 0 || max_token_length > (1 << 16)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": implausible max_token_length ",
                                                   max_token_length,
                                                   " (not a llama2.c tokenizer.bin?)"));
  }
  Vocabulary v;
  while (!reader.AtEnd()) {
    const auto id = static_cast<int32_t>(v.tokens.size());
    const std::string what = absl::StrCat("token ", id);
    RS_ASSIGN_OR_RETURN(const float score, reader.Read<float>(what + " score"));
    RS_ASSIGN_OR_RETURN(const int32_t len, reader.Read<int32_t>(what + " length"));
    if (len < 0 || len > max_token_length + 16) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", what, " has length ", len,
                                                     " (max_token_length ", max_token_length,
                                                     ") at offset ", reader.pos() - 4));
    }
    RS_ASSIGN_OR_RETURN(std::string piece, reader.ReadBytes(len, what + " bytes"));
    // run.c stores BOS/EOS as "\n<s>\n" and "\n</s>\n" and spaces as ' '; GGUF and
    // sentencepiece use "<s>", "</s>" and U+2581.
    if (id == 1 || id == 2) {
      piece = id == 1 ? "<s>" : "</s>";
    } else {
      piece = absl::StrReplaceAll(piece, {{" ", "\xE2\x96\x81"}});
    }
    v.types.push_back(TypeOfPiece(id, piece));
    v.tokens.push_back(std::move(piece));
    v.scores.push_back(score);
  }
  if (v.tokens.size() < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": llama2.c tokenizer has ", v.tokens.size(),
                     " tokens; it needs at least <unk>, BOS and EOS"));
  }
  v.model = TokenizerModel::kSentencePiece;
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

absl::StatusOr<Vocabulary> ReadLlama2cTokenizer(const std::string& path) {
  RS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  return ParseLlama2cTokenizer(file->bytes(), path);
}

}  // namespace ringserve::tokenizer
