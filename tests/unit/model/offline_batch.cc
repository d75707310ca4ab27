#include "tests/unit/model/offline_batch.h"

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/step_chains.h"

namespace ringserve::model::testing {
namespace {

using engine::Sampler;
using engine::StepChains;

int BlocksFor(const OfflineRequest& r, int block_size) {
  const size_t tokens = r.prompt_ids.size() + static_cast<size_t>(r.max_tokens);
  return static_cast<int>((tokens + block_size - 1) / block_size);
}

// Per-request progress through the loop.
struct Sequence {
  std::vector<int32_t> tokens;  // prompt + generated
  std::vector<int32_t> block_table;
  int computed = 0;  // tokens whose KV is in the cache
  bool done = false;
  Sampler sampler;
};

}  // namespace

int64_t OfflineKvBlocks(std::span<const OfflineRequest> requests, int block_size) {
  int64_t total = 0;
  for (const OfflineRequest& r : requests) total += BlocksFor(r, block_size);
  return total;
}

absl::StatusOr<std::vector<OfflineResult>> RunOfflineBatch(
    LlamaModel& model, std::span<const OfflineRequest> requests) {
  const ModelOptions& opts = model.options();
  for (size_t i = 0; i < requests.size(); ++i) {
    const OfflineRequest& r = requests[i];
    if (static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens > model.max_context_len()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RunOfflineBatch: request ", i, " has ", r.prompt_ids.size(), " prompt tokens + ",
          r.max_tokens, " to generate, beyond the model's context of ", model.max_context_len(),
          " tokens"));
    }
  }
  if (OfflineKvBlocks(requests, opts.block_size) > opts.num_kv_blocks) {
    return absl::InvalidArgumentError("RunOfflineBatch: the model's KV pool is too small");
  }
  std::vector<Sequence> seqs;
  std::vector<OfflineResult> results(requests.size());
  int32_t next_block = 0;
  for (const OfflineRequest& r : requests) {
    if (r.prompt_ids.empty()) return absl::InvalidArgumentError("RunOfflineBatch: empty prompt");
    Sequence s{r.prompt_ids, {}, 0, r.max_tokens <= 0, Sampler(r.sampling, r.prompt_ids)};
    s.block_table.resize(BlocksFor(r, opts.block_size));
    std::iota(s.block_table.begin(), s.block_table.end(), next_block);
    next_block += static_cast<int32_t>(s.block_table.size());
    seqs.push_back(std::move(s));
  }
  std::vector<SequenceChunk> chunks;
  std::vector<size_t> owners;
  StepChains chains;
  const auto vocab = static_cast<size_t>(model.config().vocab_size);
  for (;;) {
    // Plan: decoding sequences take one token, prefilling ones a chunk of what is left.
    chunks.clear();
    owners.clear();
    int budget = opts.max_batch_tokens;
    for (size_t i = 0; i < seqs.size() && budget > 0; ++i) {
      Sequence& s = seqs[i];
      if (s.done || static_cast<int>(chunks.size()) == opts.max_seqs) continue;
      const int pending = static_cast<int>(s.tokens.size()) - s.computed;
      const int take = std::min(pending, budget);
      const bool finishes = take == pending;
      chunks.push_back(
          {std::span(s.tokens).subspan(s.computed, take), s.computed, s.block_table, finishes});
      owners.push_back(i);
      budget -= take;
    }
    if (chunks.empty()) break;
    // The finishing chunks' tokens are picked on the device, as the generator's are.
    chains.Clear(static_cast<size_t>(model.max_penalty_entries()));
    for (size_t c = 0; c < chunks.size(); ++c) {
      if (chunks[c].sample) chains.Add(seqs[owners[c]].sampler);
    }
    RS_ASSIGN_OR_RETURN(const SampledPass pass, model.ForwardSampled(chunks, chains.view()));
    size_t row = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      Sequence& s = seqs[owners[c]];
      s.computed += static_cast<int>(chunks[c].tokens.size());
      if (!chunks[c].sample) continue;
      const OfflineRequest& r = requests[owners[c]];
      OfflineResult& out = results[owners[c]];
      const int32_t id = chains.Finish(s.sampler, pass, row, vocab).id;
      ++row;
      out.generated_ids.push_back(id);
      s.tokens.push_back(id);
      if (std::find(r.stop_ids.begin(), r.stop_ids.end(), id) != r.stop_ids.end()) {
        out.finish_reason = "stop";
        s.done = true;
      } else if (static_cast<int>(out.generated_ids.size()) >= r.max_tokens) {
        out.finish_reason = "length";
        s.done = true;
      }
    }
  }
  return results;
}

}  // namespace ringserve::model::testing
