#include "tools/ringserve-run/step_bench.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <span>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvcache/sizing.h"

namespace ringserve::tools {
namespace {

using Clock = std::chrono::steady_clock;
using model::LlamaModel;
using model::ModelConfig;
using model::SequenceChunk;

struct Summary {
  double median = 0;
  double mean = 0;
  double min = 0;
};

Summary Summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
  s.min = v.front();
  return s;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Bytes one token's K and V take over all layers, in the KV pool's dtype.
double KvBytesPerToken(LlamaModel& model) {
  const kernels::KvLayerView layer = model.kv_storage().Layer(0);
  return 2.0 * model.config().num_layers * layer.num_kv_heads * layer.head_dim *
         static_cast<double>(kernels::DTypeBytes(layer.dtype, 1));
}

// Weight bytes one decode step reads: all of them, except that an untied input embedding
// contributes one row per token (counted as nothing).
double DecodeWeightBytes(const LlamaModel& model) {
  const ModelConfig& c = model.config();
  const double bytes = static_cast<double>(model.weight_bytes());
  if (c.tied_embeddings) return bytes;
  const double bytes_per_parameter = bytes / static_cast<double>(c.NumParameters());
  return bytes - bytes_per_parameter * c.vocab_size * c.dim;
}

// FLOPs of every layer's projections for one token (the output head is counted apart:
// only sampled rows go through it).
double LayerMatmulFlopsPerToken(const ModelConfig& c) {
  const double q = static_cast<double>(c.num_heads) * c.head_dim;
  const double kv = static_cast<double>(c.num_kv_heads) * c.head_dim;
  const double per_layer =
      c.dim * (q + 2 * kv) + q * c.dim + 2.0 * c.dim * c.hidden_dim + 1.0 * c.hidden_dim * c.dim;
  return 2.0 * c.num_layers * per_layer;
}

std::vector<int32_t> RandomTokens(int n, int vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> token(0, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = token(rng);
  return ids;
}

// Block ids [first, first + count).
std::vector<int32_t> BlockRange(int64_t first, int64_t count) {
  std::vector<int32_t> blocks(static_cast<size_t>(count));
  std::iota(blocks.begin(), blocks.end(), static_cast<int32_t>(first));
  return blocks;
}

// Prefills `tokens[i]` into sequence i's blocks, packing chunks of several sequences into
// each pass up to max_batch_tokens and max_seqs. Samples the last chunk of each sequence
// only when `sample` (a prefill that ends in a decode samples; a context fill need not).
absl::Status Prefill(LlamaModel& model, const std::vector<std::vector<int32_t>>& tokens,
                     const std::vector<std::vector<int32_t>>& tables, bool sample, int adapters,
                     int* passes) {
  const int budget_tokens = model.options().max_batch_tokens;
  const size_t max_seqs = static_cast<size_t>(model.options().max_seqs);
  std::vector<SequenceChunk> chunks;
  size_t seq = 0;
  int offset = 0;
  *passes = 0;
  while (seq < tokens.size()) {
    chunks.clear();
    int budget = budget_tokens;
    while (seq < tokens.size() && budget > 0 && chunks.size() < max_seqs) {
      const int len = static_cast<int>(tokens[seq].size());
      const int n = std::min(budget, len - offset);
      chunks.push_back({std::span(tokens[seq]).subspan(static_cast<size_t>(offset), n), offset,
                        tables[seq], sample && offset + n == len});
      if (adapters > 0) chunks.back().adapter = static_cast<int32_t>(seq % adapters);
      budget -= n;
      offset += n;
      if (offset == len) {
        ++seq;
        offset = 0;
      }
    }
    RS_RETURN_IF_ERROR(model.Forward(chunks).status());
    ++*passes;
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> TimeDecode(LlamaModel& model, int batch,
                                          const StepBenchOptions& options,
                                          const std::vector<std::vector<int32_t>>& tables,
                                          std::mt19937_64& rng) {
  const ModelConfig& c = model.config();
  std::vector<int32_t> tokens = RandomTokens(batch, c.vocab_size, rng);
  std::vector<SequenceChunk> chunks(static_cast<size_t>(batch));
  std::vector<kernels::RowSampling> chains(static_cast<size_t>(batch), options.sampling);
  std::vector<int32_t> logprob_rows;
  if (options.logprobs) {
    for (int b = 0; b < batch; ++b) logprob_rows.push_back(b);
  }
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> step_s;
  int64_t replays_before_timing = 0;
  for (int step = 0; step < options.warmup_steps + options.timed_steps; ++step) {
    if (step == options.warmup_steps) replays_before_timing = model.decode_graph_stats().replays;
    // Every batch size starts again at position context_tokens: the context's KV is
    // intact, and later positions are simply written anew.
    const int position = options.context_tokens + step;
    for (int b = 0; b < batch; ++b) {
      chunks[b] = {std::span(&tokens[b], 1), position, tables[b], true};
      if (options.adapters > 0) chunks[b].adapter = b % options.adapters;
    }
    for (kernels::RowSampling& chain : chains) chain.uniform = uniform(rng);
    const Clock::time_point start = Clock::now();
    // The engine's decode step: tokens picked (and logprobs taken) on the device, only the
    // ids (and logprobs) come back.
    RS_RETURN_IF_ERROR(
        model.ForwardSampled(chunks, {.chains = chains, .logprob_rows = logprob_rows}).status());
    if (step >= options.warmup_steps) step_s.push_back(SecondsSince(start));
    tokens = RandomTokens(batch, c.vocab_size, rng);
  }
  const int64_t replays = model.decode_graph_stats().replays - replays_before_timing;
  const Summary s = Summarize(step_s);
  // Attention at position p reads p + 1 keys and values.
  const double avg_kv_tokens =
      options.context_tokens + options.warmup_steps + (options.timed_steps + 1) / 2.0;
  const double weight_bytes = DecodeWeightBytes(model);
  const double kv_bytes = batch * avg_kv_tokens * KvBytesPerToken(model);
  const kernels::RowSampling& chain = options.sampling;
  return nlohmann::json{{"batch", batch},
                        {"context", options.context_tokens},
                        {"sampling",
                         {{"temperature", chain.temperature},
                          {"top_k", chain.top_k},
                          {"top_p", chain.top_p},
                          {"min_p", chain.min_p},
                          {"logprobs", options.logprobs}}},
                        {"path", replays == options.timed_steps ? "graph"
                                 : replays == 0                 ? "eager"
                                                                : "mixed"},
                        {"timed_steps", options.timed_steps},
                        {"step_ms_median", 1e3 * s.median},
                        {"step_ms_mean", 1e3 * s.mean},
                        {"step_ms_min", 1e3 * s.min},
                        {"tokens_per_s", batch / s.median},
                        {"avg_kv_tokens", avg_kv_tokens},
                        {"weight_bytes", weight_bytes},
                        {"kv_bytes", kv_bytes},
                        {"bytes_per_step", weight_bytes + kv_bytes},
                        {"gb_per_s", (weight_bytes + kv_bytes) / s.median / 1e9}};
}

absl::StatusOr<nlohmann::json> TimePrefill(LlamaModel& model, const StepBenchOptions& options,
                                           std::mt19937_64& rng) {
  const ModelConfig& c = model.config();
  const int n = options.prefill_tokens;
  const std::vector<std::vector<int32_t>> tables = {
      BlockRange(0, kvcache::NumBlocksForTokens(n, model.options().block_size))};
  std::vector<double> seconds;
  int passes = 0;
  for (int rep = 0; rep <= options.prefill_reps; ++rep) {  // rep 0 warms up
    const std::vector<std::vector<int32_t>> tokens = {RandomTokens(n, c.vocab_size, rng)};
    const Clock::time_point start = Clock::now();
    RS_RETURN_IF_ERROR(Prefill(model, tokens, tables, /*sample=*/true, options.adapters, &passes));
    if (rep > 0) seconds.push_back(SecondsSince(start));
  }
  const Summary s = Summarize(seconds);
  const double matmul_flops =
      n * LayerMatmulFlopsPerToken(c) + 2.0 * c.dim * static_cast<double>(c.vocab_size);
  // Causal: token p's query meets p + 1 keys, in QK^T and again in PV.
  const double attention_flops =
      4.0 * c.num_layers * c.num_heads * c.head_dim * (static_cast<double>(n) * (n + 1) / 2.0);
  return nlohmann::json{{"tokens", n},
                        {"passes", passes},
                        {"reps", options.prefill_reps},
                        {"ms_median", 1e3 * s.median},
                        {"ms_mean", 1e3 * s.mean},
                        {"tokens_per_s", n / s.median},
                        {"matmul_flops", matmul_flops},
                        {"attention_flops", attention_flops},
                        {"tflops", (matmul_flops + attention_flops) / s.median / 1e12},
                        {"matmul_tflops", matmul_flops / s.median / 1e12}};
}

int MaxBatch(const StepBenchOptions& options) {
  return options.decode_batches.empty()
             ? 0
             : *std::max_element(options.decode_batches.begin(), options.decode_batches.end());
}

int64_t DecodeBlocksPerSeq(const StepBenchOptions& options, int block_size) {
  return kvcache::NumBlocksForTokens(
      int64_t{options.context_tokens} + options.warmup_steps + options.timed_steps, block_size);
}

}  // namespace

int64_t StepBenchKvBlocks(const StepBenchOptions& options, int block_size) {
  return std::max(MaxBatch(options) * DecodeBlocksPerSeq(options, block_size),
                  kvcache::NumBlocksForTokens(options.prefill_tokens, block_size));
}

absl::StatusOr<nlohmann::json> RunStepBench(LlamaModel& model, const StepBenchOptions& options) {
  if (options.context_tokens < 0 || options.warmup_steps < 0 || options.timed_steps < 1 ||
      options.prefill_tokens < 0 || options.prefill_reps < 1) {
    return absl::InvalidArgumentError(
        "step bench: --context, --warmup-steps and --prefill-tokens must be >= 0, "
        "--decode-steps and --prefill-reps >= 1");
  }
  for (int b : options.decode_batches) {
    if (b < 1 || b > model.options().max_seqs || b > model.options().max_batch_tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("--decode-batch ", b, " must be in [1, max_seqs and max_batch_tokens]"));
    }
  }
  // Decoding sequences hold the context plus every warm-up and timed step.
  const int64_t decode_tokens =
      int64_t{options.context_tokens} + options.warmup_steps + options.timed_steps;
  if ((!options.decode_batches.empty() && decode_tokens > model.max_context_len()) ||
      options.prefill_tokens > model.max_context_len()) {
    return absl::InvalidArgumentError(
        absl::StrCat("step bench: --context + --warmup-steps + --decode-steps (", decode_tokens,
                     ") and --prefill-tokens (", options.prefill_tokens,
                     ") must fit the model's context of ", model.max_context_len(), " tokens"));
  }
  if (StepBenchKvBlocks(options, model.options().block_size) > model.options().num_kv_blocks) {
    return absl::InvalidArgumentError("step bench: the KV pool is too small for these runs");
  }
  std::mt19937_64 rng(options.seed * 7919 + 17);
  nlohmann::json report = {{"decode", nlohmann::json::array()}};
  const int max_batch = MaxBatch(options);
  if (max_batch > 0) {
    const int64_t per_seq = DecodeBlocksPerSeq(options, model.options().block_size);
    std::vector<std::vector<int32_t>> tables, contexts;
    for (int b = 0; b < max_batch; ++b) {
      tables.push_back(BlockRange(b * per_seq, per_seq));
      contexts.push_back(RandomTokens(options.context_tokens, model.config().vocab_size, rng));
    }
    const Clock::time_point start = Clock::now();
    int passes = 0;
    if (options.context_tokens > 0) {
      RS_RETURN_IF_ERROR(
          Prefill(model, contexts, tables, /*sample=*/false, options.adapters, &passes));
    }
    report["context_fill_s"] = SecondsSince(start);
    for (int b : options.decode_batches) {
      RS_ASSIGN_OR_RETURN(nlohmann::json one, TimeDecode(model, b, options, tables, rng));
      if (options.compare_eager && one["path"] == "graph") {
        model.set_decode_graphs(false);
        absl::StatusOr<nlohmann::json> eager = TimeDecode(model, b, options, tables, rng);
        model.set_decode_graphs(true);
        RS_RETURN_IF_ERROR(eager.status());
        one["eager_step_ms_median"] = (*eager)["step_ms_median"];
      }
      report["decode"].push_back(std::move(one));
    }
  }
  if (options.prefill_tokens > 0) {
    RS_ASSIGN_OR_RETURN(report["prefill"], TimePrefill(model, options, rng));
  }
  return report;
}

}  // namespace ringserve::tools
