// Tokenizer throughput on a prompt of English prose, code, accented, CJK and Devanagari text:
// the pre-tokenisers' regex splits alone (each implemented pattern), and whole encoding with
// the real vocabularies in ../shared/tokenizers (skipped without them).
//   usage: ringserve-tokenizer-bench [--shared DIR] [benchmark flags]
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/shared_flag.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"
#include "worker/tokenizer/pretokenizer.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {
namespace {

std::string g_shared = RINGSERVE_SHARED_DIR;

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

// The tokenizer of ../shared/tokenizers/ggml-vocab-NAME.gguf, or null.
std::unique_ptr<Tokenizer> SharedTokenizer(const std::string& name) {
  auto file = model::GgufFile::Open(g_shared + "/tokenizers/ggml-vocab-" + name + ".gguf");
  if (!file.ok()) return nullptr;
  auto vocab = model::VocabularyFromGguf(**file);
  if (!vocab.ok()) return nullptr;
  auto tok = Tokenizer::Create(*std::move(vocab));
  return tok.ok() ? *std::move(tok) : nullptr;
}

void BM_Encode(benchmark::State& state, const char* vocabulary) {
  const std::unique_ptr<Tokenizer> tok = SharedTokenizer(vocabulary);
  if (tok == nullptr) {
    state.SkipWithError("no vocabulary under --shared");
    return;
  }
  const std::string& text = MixedText();
  size_t tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = tok->Encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK_CAPTURE(BM_Encode, gpt2, "gpt-2")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Encode, starcoder, "starcoder")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Encode, deepseek_llm, "deepseek-llm")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Encode, llama_spm, "llama-spm")->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ringserve::tokenizer

int main(int argc, char** argv) {
  ringserve::bench::TakeSharedFlag(&argc, argv, &ringserve::tokenizer::g_shared);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
