// Writes the tokenizer_fuzzer seed corpus into argv[1]: one input per mode (see
// tokenizer_fuzzer.cc): both tokenizer.json fixtures, a tiny llama2.c tokenizer.bin, mixed
// script text with and without special-token parsing, and a run of token ids.
#include <cstdint>
#include <optional>
#include <string>

#include "tests/fuzz/seed_corpus.h"
#include "tests/unit/tokenizer/json_fixtures.h"

namespace {

// llama2.c layout: int32 max_token_length, then per token: float score, int32 length, bytes.
std::string TinyLlama2cTokenizer() {
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  const int32_t max_len = 4;
  put(&max_len, 4);
  for (const char* piece : {"<unk>", "<s>", "</s>", "a", "b", " ab"}) {
    const float score = -1;
    const auto len = static_cast<int32_t>(std::string(piece).size());
    put(&score, 4);
    put(&len, 4);
    put(piece, len);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<ringserve::fuzz::SeedCorpus> corpus =
      ringserve::fuzz::SeedCorpus::FromArgs(argc, argv);
  if (!corpus) return 2;
  namespace t = ringserve::tokenizer::testing;
  corpus->Add("byte_level.json", 0, t::ByteLevelFixture().dump());
  corpus->Add("sentencepiece.json", 0, t::SentencePieceFixture().dump());
  corpus->Add("llama2c.bin", 1, TinyLlama2cTokenizer());
  const std::string text =
      "Hello the world, ab b\n\t \xC3\xA9t\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80";
  corpus->Add("text.txt", 2, text);
  corpus->Add("text_special.txt", 2 | 4, text + "<|endoftext|><s>");
  corpus->Add("ids.bin", 3, std::string("\x01\x00\x04\x01\xff\x00\x03\x00\xc3\x00\xa9\x00", 12));
  corpus->Add("reply.txt", 3 | 8,
              "<think>\nCall f.\n</think>\n\nSure.\n<tool_call>\n{\"name\": \"f\", "
              "\"arguments\": {\"x\": [1, \"<\"]}}\n</tool_call>\n<tool_call>{\"name\": 1}"
              "</tool_call> <tool");
  corpus->Add("reply_mistral_v11.txt", 3 | 8,
              "[THINK]Call f.[/THINK]Sure. [TOOL_CALLS]f[ARGS]{\"x\": "
              "[1]}[TOOL_CALLS]get_weather[CALL_ID]Ab12Cd34E"
              "[ARGS]{\"city\": \"Oslo\"}");
  return corpus->ExitCode();
}
