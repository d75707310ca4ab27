#include "worker/tokenizer/tokenizer.h"

#include <algorithm>
#include <utility>

#include "common/status_macros.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0;;) {
    const size_t hit = s.find(from, pos);
    out.append(s.substr(pos, hit - pos));
    if (hit == std::string_view::npos) break;
    out.append(to);
    pos = hit + from.size();
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xXX>" -> XX, else -1 (SentencePiece byte-fallback pieces).
int ParseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  const int hi = HexDigit(piece[3]);
  const int lo = HexDigit(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Bytes of one token, as llama.cpp's token_to_piece(special = false) gives them.
std::string DecodePiece(const Vocabulary& v, std::string_view piece, TokenType type) {
  if (type == TokenType::kControl) return "";
  if (type == TokenType::kUserDefined) return std::string(piece);
  if (v.model == TokenizerModel::kSentencePiece) {
    if (const int byte = ParseBytePiece(piece); byte >= 0) {
      return std::string(1, static_cast<char>(byte));
    }
    return ReplaceAll(piece, kSpaceMarker, " ");
  }
  std::string out;
  for (const Utf8Char& c : SplitUtf8(piece)) {
    const int byte = UnicodeToByte(c.cp);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append(piece.substr(c.offset, c.length));  // not a byte character: keep as is
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(Vocabulary vocab) {
  RS_ASSIGN_OR_RETURN(PieceIndex index, PieceIndex::Build(vocab));
  PreTokenizer pre = PreTokenizer::kDefault;
  if (vocab.model == TokenizerModel::kByteLevelBpe) {
    RS_ASSIGN_OR_RETURN(pre, PreTokenizerFromName(vocab.pre_tokenizer));
    if (vocab.merges.empty()) {
      return absl::InvalidArgumentError("vocabulary: byte-level BPE without merges");
    }
  }
  index.set_ignore_merges(pre == PreTokenizer::kLlama3);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(vocab), std::move(index), pre));
}

Tokenizer::Tokenizer(Vocabulary vocab, PieceIndex index, PreTokenizer pre)
    : vocab_(std::move(vocab)), index_(std::move(index)), pre_(pre) {
  decoded_.reserve(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_size(); ++id) {
    const TokenType type = TypeOf(id);
    decoded_.push_back(DecodePiece(vocab_, vocab_.tokens[id], type));
    if ((type == TokenType::kControl || type == TokenType::kUserDefined ||
         type == TokenType::kUnknown) &&
        !vocab_.tokens[id].empty()) {
      special_ids_.push_back(id);
    }
  }
  // llama.cpp tries the longest special pieces first (cache_special_tokens).
  std::stable_sort(special_ids_.begin(), special_ids_.end(), [this](int32_t a, int32_t b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });
}

TokenType Tokenizer::TypeOf(int32_t id) const {
  return vocab_.types.empty() ? TokenType::kNormal : vocab_.types[id];
}

std::string_view Tokenizer::Piece(int32_t id) const {
  return id >= 0 && id < vocab_size() ? std::string_view(vocab_.tokens[id]) : "";
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return id >= 0 && (id == vocab_.eos_id || std::find(vocab_.eot_ids.begin(), vocab_.eot_ids.end(),
                                                      id) != vocab_.eot_ids.end());
}

std::vector<int32_t> Tokenizer::EndOfGenerationIds() const {
  std::vector<int32_t> ids;
  if (vocab_.eos_id >= 0) ids.push_back(vocab_.eos_id);
  for (int32_t id : vocab_.eot_ids) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return false;
  const TokenType type = TypeOf(id);
  return type == TokenType::kControl || type == TokenType::kUnknown;
}

// llama.cpp tokenizer_st_partition: each special piece in turn (longest first) cuts every
// raw fragment at its occurrences. Control and unknown pieces only count with
// parse_special; user-defined ones always.
std::vector<Tokenizer::Fragment> Tokenizer::SplitSpecial(std::string_view text,
                                                         bool parse_special) const {
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({text, -1});
  std::vector<Fragment> next;
  for (int32_t id : special_ids_) {
    if (!parse_special && TypeOf(id) != TokenType::kUserDefined) continue;
    const std::string_view piece = vocab_.tokens[id];
    if (text.find(piece) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = 0;
      for (size_t hit; (hit = f.text.find(piece, pos)) != std::string_view::npos;) {
        if (hit > pos) next.push_back({f.text.substr(pos, hit - pos), -1});
        next.push_back({{}, id});
        pos = hit + piece.size();
      }
      if (pos < f.text.size()) next.push_back({f.text.substr(pos), -1});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& opts) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (opts.add_bos.value_or(vocab_.add_bos) && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  const std::vector<Fragment> fragments = SplitSpecial(text, opts.parse_special);
  if (vocab_.model == TokenizerModel::kSentencePiece) {
    EncodeSentencePieceFragments(fragments, opts.continues_text, &ids);
  } else {
    EncodeByteLevelFragments(fragments, &ids);
  }
  if (opts.add_eos.value_or(vocab_.add_eos) && vocab_.eos_id >= 0) {
    ids.push_back(vocab_.eos_id);
  }
  return ids;
}

void Tokenizer::EncodeSentencePieceFragments(const std::vector<Fragment>& fragments,
                                             bool continues_text, std::vector<int32_t>* out) const {
  // llama.cpp (llama_vocab::impl::tokenize, LLAMA_VOCAB_TYPE_SPM): the dummy-prefix
  // space goes before the first raw fragment and before each one that follows a token.
  bool previous_was_token = !continues_text;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out->push_back(f.token);
      previous_was_token = true;
      continue;
    }
    std::string text;
    if (vocab_.add_space_prefix && previous_was_token) text.append(kSpaceMarker);
    text += ReplaceAll(f.text, " ", kSpaceMarker);
    EncodeSentencePiece(text, index_, out);
    previous_was_token = false;
  }
}

void Tokenizer::EncodeByteLevelFragments(const std::vector<Fragment>& fragments,
                                         std::vector<int32_t>* out) const {
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out->push_back(f.token);
      continue;
    }
    for (std::string_view word : PreTokenize(pre_, f.text)) {
      EncodeByteLevelWord(word, index_, out);
    }
  }
}

void Tokenizer::AppendTokenBytes(int32_t id, int32_t previous, std::string* out) const {
  if (id < 0 || id >= vocab_size()) return;
  std::string_view bytes = decoded_[id];
  // llama2.c run.c decode(): "following BOS token, sentencepiece decoder strips any
  // leading whitespace" -- the dummy prefix the encoder added.
  if (vocab_.model == TokenizerModel::kSentencePiece && vocab_.add_space_prefix && previous >= 0 &&
      previous == vocab_.bos_id && !bytes.empty() && bytes[0] == ' ' &&
      (TypeOf(id) == TokenType::kNormal || TypeOf(id) == TokenType::kUndefined)) {
    bytes.remove_prefix(1);
  }
  out->append(bytes);
}

std::vector<std::string> Tokenizer::ReplyBytesOfTokens() const {
  std::vector<std::string> bytes(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_size(); ++id) {
    if (!IsSpecial(id)) AppendTokenBytes(id, -1, &bytes[static_cast<size_t>(id)]);
  }
  return bytes;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool control_as_text) const {
  std::string bytes;
  int32_t previous = -1;
  for (int32_t id : ids) {
    if (control_as_text && id >= 0 && id < vocab_size() && TypeOf(id) == TokenType::kControl) {
      bytes.append(Piece(id));
    } else {
      AppendTokenBytes(id, previous, &bytes);
    }
    previous = id;
  }
  std::string text;
  text.reserve(bytes.size());
  RepairUtf8(bytes, /*final=*/true, &text);
  return text;
}

}  // namespace ringserve::tokenizer
