#include "tests/unit/tokenizer/chat_vocabulary.h"

#include <string>
#include <utility>
#include <vector>

#include "common/check.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer::testing {

Vocabulary ChatVocabulary(bool llama3) {
  Vocabulary v;
  v.model = TokenizerModel::kByteLevelBpe;
  v.pre_tokenizer = "qwen2";
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
    v.types.push_back(TokenType::kNormal);
  }
  const char* markers[] = {"<|im_start|>",        "<|im_end|>",        "<|begin_of_text|>",
                           "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                           "<|endoftext|>"};
  for (const char* m : markers) {
    const bool chatml = std::string(m) == "<|im_start|>" || std::string(m) == "<|im_end|>" ||
                        std::string(m) == "<|endoftext|>";
    v.tokens.push_back(llama3 || chatml ? m : std::string("<unused") + m + ">");
    v.types.push_back(llama3 || chatml ? TokenType::kControl : TokenType::kUnused);
  }
  // One merge the tests' texts never meet ("~~"): a byte-level vocabulary needs merges.
  v.tokens.push_back("~~");
  v.types.push_back(TokenType::kNormal);
  v.merges = {"~ ~"};
  v.scores.assign(v.tokens.size(), 0.0F);
  v.eos_id = kEndOfText;
  v.add_bos = false;
  v.add_space_prefix = false;
  return v;
}

std::vector<int32_t> Bytes(std::string_view text) {
  std::vector<int32_t> ids;
  for (const char c : text) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

std::unique_ptr<Tokenizer> ChatTokenizer(bool llama3, const std::string& chat_template) {
  Vocabulary vocab = ChatVocabulary(llama3);
  vocab.chat_template = chat_template;
  auto tok = Tokenizer::Create(std::move(vocab));
  RS_CHECK(tok.ok());  // the fixture is well formed
  return *std::move(tok);
}

namespace {

// ChatVocabulary with `markers` after its tokens as control tokens, <s> and </s> (the first
// two) as BOS and EOS.
std::unique_ptr<Tokenizer> MistralLikeTokenizer(const std::vector<const char*>& markers,
                                                const std::string& chat_template) {
  Vocabulary vocab = ChatVocabulary(/*llama3=*/false);
  for (const char* m : markers) {
    vocab.tokens.emplace_back(m);
    vocab.types.push_back(TokenType::kControl);
    vocab.scores.push_back(0.0F);
  }
  vocab.chat_template = chat_template;
  vocab.bos_id = kMistralBos;
  vocab.eos_id = kMistralEos;
  auto tok = Tokenizer::Create(std::move(vocab));
  RS_CHECK(tok.ok());
  return *std::move(tok);
}

std::vector<const char*> MistralMarkers(bool v11) {
  std::vector<const char*> markers = {"<s>",
                                      "</s>",
                                      "[INST]",
                                      "[/INST]",
                                      "[TOOL_CALLS]",
                                      "[AVAILABLE_TOOLS]",
                                      "[/AVAILABLE_TOOLS]",
                                      "[TOOL_RESULTS]",
                                      "[/TOOL_RESULTS]"};
  if (v11) markers.insert(markers.end(), {"[TOOL_CONTENT]", "[ARGS]", "[CALL_ID]"});
  return markers;
}

}  // namespace

std::unique_ptr<Tokenizer> MistralTokenizer(bool v11, const std::string& chat_template) {
  auto tok = MistralLikeTokenizer(MistralMarkers(v11), chat_template);
  RS_CHECK(tok->vocab_size() == (v11 ? kCallId : kToolResultsEnd) + 1);
  return tok;
}

std::unique_ptr<Tokenizer> MagistralTokenizer() {
  std::vector<const char*> markers = MistralMarkers(/*v11=*/true);
  markers.insert(markers.end(), {"[THINK]", "[/THINK]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"});
  auto tok = MistralLikeTokenizer(markers, "[INST] [TOOL_CALLS] [ARGS] [THINK]");
  RS_CHECK(tok->vocab_size() == kSystemPromptEnd + 1);
  return tok;
}

std::unique_ptr<Tokenizer> DeepSeekTokenizer(const std::string& chat_template) {
  Vocabulary vocab = ChatVocabulary(/*llama3=*/false);
  const std::pair<const char*, TokenType> markers[] = {
      {"<｜begin▁of▁sentence｜>", TokenType::kControl},
      {"<｜end▁of▁sentence｜>", TokenType::kControl},
      {"<｜User｜>", TokenType::kUserDefined},
      {"<｜Assistant｜>", TokenType::kUserDefined},
      {"<think>", TokenType::kUserDefined},
      {"</think>", TokenType::kUserDefined}};
  for (const auto& [marker, type] : markers) {
    vocab.tokens.emplace_back(marker);
    vocab.types.push_back(type);
    vocab.scores.push_back(0.0F);
  }
  RS_CHECK(static_cast<int32_t>(vocab.tokens.size()) == kThinkEnd + 1);
  vocab.bos_id = kDeepSeekBos;
  vocab.eos_id = kDeepSeekEos;
  vocab.chat_template = chat_template;
  auto tok = Tokenizer::Create(std::move(vocab));
  RS_CHECK(tok.ok());
  return *std::move(tok);
}

std::vector<int32_t> Join(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace ringserve::tokenizer::testing
