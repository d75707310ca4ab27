// ringserve-run at the edge of the model's context (the tiny preset's 2048 tokens): work that
// fits runs, up to the last position; work beyond it is refused before the model runs, with
// a message naming the limit (it used to fail inside the forward pass with a message about
// KV blocks, and `logits` refused a sequence that filled the context exactly).
#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kContext = 2048;  // the tiny preset's max_seq_len

std::string Ids(int n) {
  std::string ids = "5";
  for (int i = 1; i < n; ++i) ids += ",5";
  return ids;
}

ToolRun RunOnTiny(const std::string& command, const std::string& args) {
  return RunTool("ringserve-run", command + " --dummy-weights --preset tiny --threads 1 " + args);
}

TEST(RunContextTest, GenerationUpToTheContextRunsAndBeyondItIsRefused) {
  const ToolRun fits =
      RunOnTiny("", "--json --ignore-eos --prompt-ids " + Ids(kContext - 8) + " --max-tokens 8");
  ASSERT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(nlohmann::json::parse(fits.out)["generated_ids"].size(), 8u);

  const ToolRun over = RunOnTiny("", "--prompt-ids " + Ids(kContext - 8) + " --max-tokens 9");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("beyond the model's context of 2048 tokens"));
  EXPECT_THAT(over.err, Not(HasSubstr("blocks")));
}

TEST(RunContextTest, LogitsFillTheContextExactlyAndRefuseMore) {
  const ToolRun full = RunOnTiny("logits", "--prompt-ids " + Ids(kContext - 2) + " --generate 2");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_EQ(nlohmann::json::parse(full.out)["logits"].size(), 3u);  // prefill + 2 passes

  const ToolRun over = RunOnTiny("logits", "--prompt-ids " + Ids(kContext - 2) + " --generate 3");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("beyond the model's context of 2048 tokens"));
}

TEST(RunContextTest, StepBenchRefusesAContextBeyondTheModels) {
  const ToolRun over = RunOnTiny("bench",
                                 "--roofline=false --parallel none --decode-batch 1 "
                                 "--context 2046 --warmup-steps 1 --decode-steps 2");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("must fit the model's context of 2048 tokens"));
}

// A prefix longer than the prompt was cut to it while the report kept the value asked for.
TEST(RunBenchFlagsTest, ASharedPrefixLongerThanThePromptIsRefused) {
  const ToolRun over = RunOnTiny("bench",
                                 "--roofline=false --parallel 1 --prompt-tokens 16 "
                                 "--gen-tokens 2 --shared-prefix 17");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("--shared-prefix must be in [0, --prompt-tokens]"));
}

// --embed: the generator runs embed their prompts; nothing decodes, and each run reports its
// embeddings per second.
TEST(RunBenchFlagsTest, EmbedRunsReportEmbeddingsPerSecond) {
  const ToolRun run =
      RunOnTiny("bench", "--roofline=false --parallel 1,4 --prompt-tokens 16 --embed --json");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  ASSERT_EQ(report["runs"].size(), 2u);
  for (const nlohmann::json& r : report["runs"]) {
    EXPECT_GT(r["embeddings_per_s"].get<double>(), 0);
    EXPECT_EQ(r["generated_tokens"].get<int64_t>(), 0);
    EXPECT_EQ(r["prefill_tokens"].get<int64_t>(), 16 * r["parallel"].get<int64_t>());
  }
}

// RINGSERVE_CPU_ISA caps the CPU kernels' instruction set for the process (the bench report
// names the one in use); a name it does not know leaves the best one, with a line saying so.
TEST(CpuIsaOverrideTest, TheEnvironmentCapsTheIsaTheReportNames) {
  const std::string args = "--roofline=false --parallel 1 --prompt-tokens 8 --gen-tokens 2 --json";
  ::setenv("RINGSERVE_CPU_ISA", "avx2", 1);
  const ToolRun avx2 = RunOnTiny("bench", args);
  ::setenv("RINGSERVE_CPU_ISA", "avx3", 1);
  const ToolRun unknown = RunOnTiny("bench", args);
  ::unsetenv("RINGSERVE_CPU_ISA");
  const ToolRun best = RunOnTiny("bench", args);
  ASSERT_EQ(avx2.exit_code, 0) << avx2.err;
  EXPECT_EQ(nlohmann::json::parse(avx2.out)["cpu_isa"], "avx2");
  ASSERT_EQ(best.exit_code, 0) << best.err;
  ASSERT_EQ(unknown.exit_code, 0) << unknown.err;
  EXPECT_EQ(nlohmann::json::parse(unknown.out)["cpu_isa"],
            nlohmann::json::parse(best.out)["cpu_isa"]);
  EXPECT_THAT(unknown.err,
              HasSubstr("RINGSERVE_CPU_ISA=avx3: not one of avx2, avx512, avx512-vnni"));
}

// info --preset prints the shape --dummy-weights --preset serves, with no file; an unknown
// preset is refused by name.
TEST(ModelToolTest, InfoPrintsAPresetsShape) {
  const ToolRun info = RunTool("ringserve-model", "info --preset llama-110m");
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("preset: llama-110m\n"));
  EXPECT_THAT(info.out, HasSubstr("config: dim=768 hidden_dim=2048 layers=12 heads=12"));
  const ToolRun unknown = RunTool("ringserve-model", "info --preset llama-9000");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("llama-9000"));
}

// make-random writes a checkpoint in the dtype asked for that ringserve-run serves and
// `info` sizes for a CPU worker (serve.sh reads cpu_weight_bytes); a dtype the shape cannot
// take (Q8_0 needs rows of 32) or an unknown one is refused by name.
TEST(ModelToolTest, MakeRandomWritesAModelInTheDtypeAskedFor) {
  const std::string path = ::testing::TempDir() + "random_bf16.gguf";
  const ToolRun made =
      RunTool("ringserve-model", "make-random --preset tiny --dtype bf16 --out " + path);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const ToolRun info = RunTool("ringserve-model", "info " + path);
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("blk.0.attn_q.weight          bf16"));
  EXPECT_THAT(info.out, HasSubstr("chat_format: none\n"));  // no chat template
  EXPECT_THAT(info.out, HasSubstr("cpu_weight_bytes: "));
  const ToolRun run =
      RunTool("ringserve-run", "run --model " + path + " --prompt-ids 1,2,3 --max-tokens 4");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const ToolRun q8 =
      RunTool("ringserve-model", "make-random --preset tiny --dtype q8_0 --out " + path);
  EXPECT_EQ(q8.exit_code, 1);
  EXPECT_THAT(q8.err, HasSubstr("Q8_0 rows must be a multiple of 32 values"));
  const ToolRun bad =
      RunTool("ringserve-model", "make-random --preset tiny --dtype int4 --out " + path);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("--dtype: expected f32, f16, bf16, q8_0, q4_0, q5_0, q4_1, "
                                 "q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, q3_k_m, "
                                 "q4_k_m or q5_k_m, got 'int4'"));
  const ToolRun k_tiny =
      RunTool("ringserve-model", "make-random --preset tiny --dtype q4_k_m --out " + path);
  EXPECT_EQ(k_tiny.exit_code, 1);
  // Its 64-value rows fall back to Q5_0 (and ffn_down's Q6_K to Q8_0), but 172-value
  // rows fit no block format.
  EXPECT_THAT(k_tiny.err, HasSubstr("'blk.0.ffn_down.weight': Q8_0 rows must be a multiple of 32"));
  // Q4_0: rows of whole blocks too; served on the CPU as kQ4Affine (0.75 bytes a value),
  // marked in `info`, and it runs.
  const ToolRun q4_tiny =
      RunTool("ringserve-model", "make-random --preset tiny --dtype q4_0 --out " + path);
  EXPECT_EQ(q4_tiny.exit_code, 1);
  EXPECT_THAT(q4_tiny.err, HasSubstr("whole blocks of 32 values"));
  const std::string q4 = ::testing::TempDir() + "random_q4_0.gguf";
  const ToolRun q4_made =
      RunTool("ringserve-model", "make-random --preset llama-110m --dtype q4_0 --out " + q4);
  ASSERT_EQ(q4_made.exit_code, 0) << q4_made.err;
  const ToolRun q4_info = RunTool("ringserve-model", "info " + q4);
  EXPECT_THAT(q4_info.out,
              HasSubstr("blk.0.attn_q.weight          q4_affine [768, 768] (q4_0 in the file)"));
  // 110M values at 0.75 bytes, norms in f32, against about 1.125 as Q8_0.
  EXPECT_THAT(q4_info.out, HasSubstr("cpu_weight_bytes: 82209792\n"));
  const ToolRun q4_run =
      RunTool("ringserve-run", "run --model " + q4 + " --prompt-ids 1,2,3 --max-tokens 2");
  EXPECT_EQ(q4_run.exit_code, 0) << q4_run.err;
}

}  // namespace
}  // namespace ringserve::tools::testing
