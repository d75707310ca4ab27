// libFuzzer target for the tokenizers. The first input byte picks what the rest is:
//   0: a tokenizer.json document (parse, build, encode and decode a sample);
//   1: a llama2.c tokenizer.bin (same);
//   2: text for the byte-level and SentencePiece fixtures: ids stay in the vocabulary,
//      Decode is valid UTF-8, valid UTF-8 round-trips exactly, streaming equals Decode;
//      and every pre-tokenizer's words are non-empty and cover the text in order;
//   3: token ids (two bytes each) for the fixtures: streaming equals Decode and never
//      emits invalid UTF-8; with bit 3 of the first byte set, a reply for the chat reply
//      parsers instead: the tool-call parser (ChatML, Llama 3.1, Mistral) and the thought
//      splitter give the same text, calls and thought however the reply is cut into pieces, and
//      leave a reply without their tags as it is.
// Every property failure aborts, so the fuzzer reports it as a crash.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/unit/tokenizer/json_fixtures.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/llama2c_vocab.h"
#include "worker/tokenizer/pretokenizer.h"
#include "worker/tokenizer/stream_decoder.h"
#include "worker/tokenizer/thought_splitter.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/tokenizer_json.h"
#include "worker/tokenizer/tool_calls.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

void Require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "tokenizer_fuzzer: property failed: %s\n", property);
  std::abort();
}

std::unique_ptr<Tokenizer> Build(const nlohmann::json& doc) {
  auto vocab = ParseTokenizerJson(doc.dump(), "fixture.json");
  Require(vocab.ok(), "fixture parses");
  auto tok = Tokenizer::Create(*std::move(vocab));
  Require(tok.ok(), "fixture builds");
  return *std::move(tok);
}

const std::vector<std::unique_ptr<Tokenizer>>& Fixtures() {
  static const std::vector<std::unique_ptr<Tokenizer>> fixtures = [] {
    std::vector<std::unique_ptr<Tokenizer>> list;
    list.push_back(Build(testing::ByteLevelFixture()));
    list.push_back(Build(testing::SentencePieceFixture()));
    return list;
  }();
  return fixtures;
}

std::string Streamed(const Tokenizer& tok, std::span<const int32_t> ids) {
  StreamDecoder stream(tok);
  std::string text;
  for (int32_t id : ids) {
    std::string piece = stream.Push(id);
    Require(IsValidUtf8(piece), "streamed piece is valid UTF-8");
    text += piece;
  }
  return text + stream.Flush();
}

void Exercise(absl::StatusOr<Vocabulary> vocab) {
  if (!vocab.ok()) return;
  auto tok = Tokenizer::Create(*std::move(vocab));
  if (!tok.ok()) return;
  EncodeOptions opts;
  opts.parse_special = true;
  const std::vector<int32_t> ids = (*tok)->Encode("Hello, world! \xC3\xA9\xE4\xB8\xAD <s>", opts);
  for (int32_t id : ids) Require(id >= 0 && id < (*tok)->vocab_size(), "id in vocabulary");
  Require(IsValidUtf8((*tok)->Decode(ids)), "Decode is valid UTF-8");
}

void CheckText(std::string_view text, bool parse_special) {
  for (const PreTokenizer kind :
       {PreTokenizer::kDefault, PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2,
        PreTokenizer::kDeepseekLlm, PreTokenizer::kStarcoder, PreTokenizer::kTekken}) {
    std::string joined;
    for (std::string_view word : PreTokenize(kind, text)) {
      Require(!word.empty(), "pre-tokenizer words are not empty");
      joined += word;
    }
    Require(joined == text, "pre-tokenizer words cover the text");
  }
  for (const auto& tok : Fixtures()) {
    EncodeOptions opts;
    opts.parse_special = parse_special;
    const std::vector<int32_t> ids = tok->Encode(text, opts);
    for (int32_t id : ids) Require(id >= 0 && id < tok->vocab_size(), "id in vocabulary");
    const std::string decoded = tok->Decode(ids);
    Require(IsValidUtf8(decoded), "Decode is valid UTF-8");
    // SentencePiece spells spaces as U+2581, so a literal U+2581 decodes as a space (as in
    // SentencePiece itself); every other valid text must come back unchanged.
    const bool spm_space_mark = tok->vocab().model == TokenizerModel::kSentencePiece &&
                                text.find("\xE2\x96\x81") != std::string_view::npos;
    if (!parse_special && !spm_space_mark && IsValidUtf8(text)) {
      Require(decoded == text, "valid UTF-8 round-trips");
    }
    Require(Streamed(*tok, ids) == decoded, "streaming equals Decode");
  }
}

void CheckIds(std::span<const uint8_t> bytes) {
  for (const auto& tok : Fixtures()) {
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
      ids.push_back((bytes[i] | (bytes[i + 1] << 8)) % tok->vocab_size());
    }
    Require(Streamed(*tok, ids) == tok->Decode(ids), "streaming equals Decode");
  }
}

// `text` fed whole, then in pieces whose sizes come from the text's own bytes.
template <typename Parser, typename Output, typename Merge>
std::pair<Output, Output> WholeAndPieces(std::string_view text, const Parser& fresh,
                                         const Merge& merge) {
  Parser whole = fresh;
  Output one = whole.Feed(text);
  merge(one, whole.Finish());
  Parser cut = fresh;
  Output pieces;
  uint32_t state = 2166136261U;
  for (size_t at = 0; at < text.size();) {
    state = (state ^ static_cast<uint8_t>(text[at])) * 16777619U;
    const size_t n = std::min<size_t>(text.size() - at, 1 + state % 7);
    merge(pieces, cut.Feed(text.substr(at, n)));
    at += n;
  }
  merge(pieces, cut.Finish());
  return {one, pieces};
}

void CheckReplyParsers(std::string_view text) {
  using Calls = ToolCallParser::Output;
  const auto merge_calls = [](Calls& into, const Calls& more) {
    into.text += more.text;
    into.calls.insert(into.calls.end(), more.calls.begin(), more.calls.end());
    into.deltas.insert(into.deltas.end(), more.deltas.begin(), more.deltas.end());
  };
  // Mistral's reply after its [TOOL_CALLS] marker (calls_open), and after another first token.
  ToolCallParser mistral_text(ChatFormat::kMistral, {"f", "get_weather"}, false, 1);
  mistral_text.FirstToken(2);
  const ToolCallParser parsers[] = {
      ToolCallParser(ChatFormat::kChatMl, {"f", "get_weather"}),
      ToolCallParser(ChatFormat::kLlama31, {"f", "get_weather"}),
      ToolCallParser(ChatFormat::kMistral, {"f", "get_weather"}, /*calls_open=*/true, 1),
      mistral_text,
      ToolCallParser(ChatFormat::kChatMl, {"f", "get_weather"}, false, -1, /*stream=*/true),
      ToolCallParser(ChatFormat::kLlama31, {"f", "get_weather"}, false, -1, /*stream=*/true),
      ToolCallParser(ChatFormat::kMistral, {"f", "get_weather"}, true, 1, /*stream=*/true),
      // Mistral v11: the markers spelled in the text; opened by the prompt, with a name.
      ToolCallParser(ChatFormat::kMistral, {"f", "get_weather"}, false, 1, false,
                     /*named_calls=*/true),
      ToolCallParser(ChatFormat::kMistral, {"f", "get_weather"}, true, 1, false, true, "f[ARGS]")};
  // A client's view of the deltas: each call's name and arguments by index.
  const auto assemble = [](const std::vector<ToolCallDelta>& deltas) {
    std::map<int, std::pair<std::string, std::string>> calls;
    for (const ToolCallDelta& delta : deltas) {
      Require(delta.id.empty() == delta.name.empty(), "a call's first delta has its id and name");
      Require(!delta.id.empty() || calls.contains(delta.index),
              "arguments come after the call's name");
      calls[delta.index].first += delta.name;
      calls[delta.index].second += delta.arguments;
    }
    return calls;
  };
  for (const ToolCallParser& parser : parsers) {
    const auto [one, pieces] = WholeAndPieces<ToolCallParser, Calls>(text, parser, merge_calls);
    Require(one.text == pieces.text, "tool-call text does not depend on the pieces");
    Require(assemble(one.deltas) == assemble(pieces.deltas),
            "streamed calls do not depend on the pieces");
    Require(one.calls.size() == pieces.calls.size(), "calls do not depend on the pieces");
    for (size_t i = 0; i < one.calls.size(); ++i) {
      Require(one.calls[i].name == pieces.calls[i].name &&
                  one.calls[i].arguments == pieces.calls[i].arguments,
              "each call does not depend on the pieces");
    }
    if (&parser == &parsers[0] && text.find("<tool_call>") == std::string_view::npos) {
      Require(one.text == text && one.calls.empty(), "a reply without a call tag stays as it is");
    }
    if (&parser == &parsers[3]) {
      Require(one.text == text && one.calls.empty(), "a Mistral reply without the marker is text");
    }
    if (&parser == &parsers[7] && text.find("[TOOL_CALLS]") == std::string_view::npos) {
      Require(one.text == text && one.calls.empty(), "a v11 reply without the marker is text");
    }
    if (!one.calls.empty()) {
      Require(one.text.empty() || &parser == &parsers[0] || &parser == &parsers[4] ||
                  &parser == &parsers[7],
              "a reply that is calls has no text");
    }
  }
  using Split = ThoughtSplitter::Output;
  const auto merge_split = [](Split& into, const Split& more) {
    into.thought += more.thought;
    into.answer += more.answer;
  };
  for (const bool opened : {false, true}) {
    const auto [one, pieces] =
        WholeAndPieces<ThoughtSplitter, Split>(text, ThoughtSplitter(opened), merge_split);
    Require(one.thought == pieces.thought && one.answer == pieces.answer,
            "the thought and answer do not depend on the pieces");
    if (!opened && text.find("<think>") == std::string_view::npos) {
      Require(one.answer == text && one.thought.empty(),
              "a reply without a thought stays as it is");
    }
    // Magistral's tags (control tokens its reply's text spells) split alike.
    const auto [tagged, tagged_pieces] = WholeAndPieces<ThoughtSplitter, Split>(
        text, ThoughtSplitter(opened, kMistralThoughtOpen, kMistralThoughtClose), merge_split);
    Require(tagged.thought == tagged_pieces.thought && tagged.answer == tagged_pieces.answer,
            "a [THINK] thought and answer do not depend on the pieces");
    // A continued reply: the client's start (the first half) sets the state, and only bytes
    // of what follows it come out, however it is cut.
    ThoughtSplitter resumed(opened);
    const size_t start = text.size() / 2;
    resumed.Resume(text.substr(0, start));
    const std::string_view rest = text.substr(start);
    const auto [after, after_pieces] =
        WholeAndPieces<ThoughtSplitter, Split>(rest, resumed, merge_split);
    Require(after.thought == after_pieces.thought && after.answer == after_pieces.answer,
            "a continuation's thought and answer do not depend on the pieces");
    Require(after.thought.size() + after.answer.size() <= rest.size(),
            "a continuation returns nothing of the start");
    Require(rest.find(after.answer) != std::string_view::npos,
            "a continuation's answer is its own text");
  }
}

}  // namespace
}  // namespace ringserve::tokenizer

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace tk = ringserve::tokenizer;
  if (size == 0) return 0;
  const std::span<const uint8_t> rest(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(rest.data()), rest.size());
  switch (data[0] % 4) {
    case 0:
      tk::Exercise(tk::ParseTokenizerJson(text, "fuzz.json"));
      break;
    case 1:
      tk::Exercise(tk::ParseLlama2cTokenizer(rest, "fuzz.bin"));
      break;
    case 2:
      tk::CheckText(text, (data[0] & 4) != 0);
      break;
    default:
      if ((data[0] & 8) != 0) {
        tk::CheckReplyParsers(text);
      } else {
        tk::CheckIds(rest);
      }
      break;
  }
  return 0;
}
