// Pre-tokeniser throughput: the regex splits byte-level BPE runs before its merges, on a
// prompt of English prose, code, accented and CJK text, for each implemented pattern.
//   build/bin/ringserve-pretokenizer-bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "worker/tokenizer/pretokenizer.h"

namespace ringserve::tokenizer {
namespace {

// About 64 KiB of mixed text, as a long prompt of a multilingual chat would have.
const std::string& MixedText() {
  static const std::string text = [] {
    constexpr std::string_view kParts[] = {
        "The quick brown fox jumps over the lazy dog; XMLHttpRequest still exists. ",
        "def parse(path: str) -> dict:\n    with open(path) as f:\n        return json.load(f)\n",
        "Über naïve café ÉCOLE: déjà vu, señor. ",
        "东京都の天気は晴れです。数据 1234 条。",
        "नमस्ते दुनिया, यह एक परीक्षण है। ",
        "  \n\n\t{\"key\": [1, 2, 3], \"url\": \"https://example.com/a/b\"}\r\n"};
    std::string out;
    while (out.size() < size_t{64} * 1024) {
      for (std::string_view part : kParts) out += part;
    }
    return out;
  }();
  return text;
}

void BM_PreTokenize(benchmark::State& state, PreTokenizer kind) {
  const std::string& text = MixedText();
  size_t words = 0;
  for (auto _ : state) {
    const std::vector<std::string_view> split = PreTokenize(kind, text);
    words = split.size();
    benchmark::DoNotOptimize(split.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["words"] = static_cast<double>(words);
}

BENCHMARK_CAPTURE(BM_PreTokenize, gpt2, PreTokenizer::kGpt2)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_PreTokenize, llama3, PreTokenizer::kLlama3)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_PreTokenize, qwen2, PreTokenizer::kQwen2)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_PreTokenize, deepseek_llm, PreTokenizer::kDeepseekLlm)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_PreTokenize, tekken, PreTokenizer::kTekken)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ringserve::tokenizer
