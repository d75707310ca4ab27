// A byte-level vocabulary whose one merge ("~~") the tests never meet, so byte b is token b, plus
// the ChatML and Llama 3 control tokens (or Mistral's), so that a rendered chat's ids can be
// written down by hand.
#ifndef RINGSERVE_TESTS_UNIT_TOKENIZER_CHAT_VOCABULARY_H_
#define RINGSERVE_TESTS_UNIT_TOKENIZER_CHAT_VOCABULARY_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::tokenizer::testing {

inline constexpr int32_t kImStart = 256, kImEnd = 257, kBeginOfText = 258, kStartHeader = 259,
                         kEndHeader = 260, kEotId = 261, kEndOfText = 262;

// With `llama3` false, only the ChatML markers (and <|endoftext|>, the EOS) are tokens.
Vocabulary ChatVocabulary(bool llama3 = true);

// MistralTokenizer's control tokens, after ChatVocabulary's.
inline constexpr int32_t kMistralBos = 264, kMistralEos = 265, kInst = 266, kInstEnd = 267,
                         kToolCalls = 268, kAvailableTools = 269, kAvailableToolsEnd = 270,
                         kToolResults = 271, kToolResultsEnd = 272;

// With `v11`, also the markers of tokenizer v7 and v11 after them.
inline constexpr int32_t kToolContent = 273, kArgs = 274, kCallId = 275;

// ChatVocabulary with Mistral's tokenizer v3 markers as control tokens and <s> / </s> as BOS
// and EOS: the mistral chat format with tool calling, its text one id per byte.
// `chat_template` as the vocabulary's template (a v11 vocabulary's template without
// [CALL_ID] makes it v13).
std::unique_ptr<Tokenizer> MistralTokenizer(bool v11 = false,
                                            const std::string& chat_template = "");

// MistralTokenizer(v11) with Magistral's thought tags [THINK] and [/THINK] after its markers,
// then v7's [SYSTEM_PROMPT] and [/SYSTEM_PROMPT].
inline constexpr int32_t kThinkTag = 276, kThinkEndTag = 277, kSystemPrompt = 278,
                         kSystemPromptEnd = 279;
std::unique_ptr<Tokenizer> MagistralTokenizer();

// DeepSeekTokenizer's markers after ChatVocabulary's tokens: BOS and EOS control tokens, the
// role markers and thought tags user-defined, as R1's distills add them.
inline constexpr int32_t kDeepSeekBos = 264, kDeepSeekEos = 265, kDeepSeekUserId = 266,
                         kDeepSeekAssistantId = 267, kThink = 268, kThinkEnd = 269;

// ChatVocabulary with DeepSeek's markers, and `chat_template` as the vocabulary's template.
std::unique_ptr<Tokenizer> DeepSeekTokenizer(const std::string& chat_template);

// The ids of plain text in that vocabulary: one per byte.
std::vector<int32_t> Bytes(std::string_view text);

// A tokenizer over ChatVocabulary(llama3) with `chat_template` as the vocabulary's template.
std::unique_ptr<Tokenizer> ChatTokenizer(bool llama3 = true, const std::string& chat_template = "");

// The parts' ids one after another.
std::vector<int32_t> Join(std::initializer_list<std::vector<int32_t>> parts);

}  // namespace ringserve::tokenizer::testing

#endif  // RINGSERVE_TESTS_UNIT_TOKENIZER_CHAT_VOCABULARY_H_
