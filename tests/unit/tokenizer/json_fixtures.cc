#include "tests/unit/tokenizer/json_fixtures.h"

#include <cstdint>
#include <cstdio>
#include <string>

#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer::testing {

using json = nlohmann::json;

json ByteLevelFixture() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteToUnicode(static_cast<uint8_t>(b))] = b;
  vocab["\xC4\xA0t"] = 256;  // "Ġt"
  vocab["he"] = 257;
  vocab["\xC4\xA0the"] = 258;
  return {{"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", json::array({"\xC4\xA0 t", json::array({"h", "e"}), "\xC4\xA0t he"})}}},
          {"added_tokens",
           json::array({{{"id", 259}, {"content", "<|endoftext|>"}, {"special", true}}})},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"decoder", {{"type", "ByteLevel"}}}};
}

json SentencePieceFixture() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  char hex[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    vocab[hex] = 3 + b;
  }
  const std::string sp = "\xE2\x96\x81";
  vocab[sp] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab[sp + "a"] = 262;
  vocab["ab"] = 263;
  vocab[sp + "ab"] = 264;
  json single = json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}});
  return {
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", {sp + " a", "a b", sp + "a b"}},
        {"byte_fallback", true},
        {"unk_token", "<unk>"}}},
      {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                    {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}}})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Prepend"}, {"prepend", sp}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", sp}}})}}},
      {"post_processor", {{"type", "TemplateProcessing"}, {"single", single}}}};
}

}  // namespace ringserve::tokenizer::testing
