#include "worker/model/batch_metadata.h"

#include <algorithm>

#include "common/check.h"

namespace ringserve::model {

PackedBatch PackBatch(std::span<const SequenceChunk> chunks, int padded_size, int block_size,
                      int blocks_per_seq, int32_t* meta) {
  int real_tokens = 0;
  for (const SequenceChunk& c : chunks) real_tokens += static_cast<int>(c.tokens.size());
  const int num_chunks = static_cast<int>(chunks.size());
  RS_CHECK(padded_size == 0 || (padded_size >= real_tokens && padded_size >= num_chunks));
  const bool padded = padded_size > 0;
  const int num_tokens = padded ? padded_size : real_tokens;
  const int num_seqs = padded ? padded_size : num_chunks;
  const int sampled_rows = static_cast<int>(SampledRows(chunks));
  const int head_rows = padded ? padded_size : sampled_rows;
  PackedBatch packed{.layout = MetaLayout(num_tokens, num_seqs, head_rows, blocks_per_seq)};
  packed.num_tokens = num_tokens;
  packed.num_seqs = num_seqs;
  const MetaLayout& layout = packed.layout;
  int32_t* ids = meta + layout.ids;
  int32_t* positions = meta + layout.positions;
  int32_t* slots = meta + layout.slots;
  int32_t* token_seq = meta + layout.token_seq;
  int32_t* lora_slots = meta + layout.lora_slots;
  int32_t* query_start = meta + layout.query_start;
  int32_t* context_lens = meta + layout.context_lens;
  int32_t* sample_rows = meta + layout.sample_rows;

  int t = 0;
  for (int s = 0; s < num_chunks; ++s) {
    const SequenceChunk& c = chunks[s];
    query_start[s] = t;
    for (size_t i = 0; i < c.tokens.size(); ++i, ++t) {
      const int32_t pos = c.start_position + static_cast<int32_t>(i);
      ids[t] = c.tokens[i];
      positions[t] = pos;
      slots[t] = c.block_table[pos / block_size] * block_size + pos % block_size;
      token_seq[t] = s;
      lora_slots[t] = c.adapter;
    }
    context_lens[s] = c.start_position + static_cast<int32_t>(c.tokens.size());
    packed.max_context_len = std::max(packed.max_context_len, context_lens[s]);
    std::copy(c.block_table.begin(), c.block_table.end(),
              meta + layout.block_tables + static_cast<int64_t>(s) * blocks_per_seq);
    for (int32_t r = SampledRows(c); r > 0; --r) sample_rows[packed.num_sampled++] = t - r;
  }
  for (; t < packed.num_tokens; ++t) {
    ids[t] = 0;
    positions[t] = 0;
    slots[t] = -1;
    token_seq[t] = -1;
    lora_slots[t] = -1;
  }
  for (int s = num_chunks; s <= packed.num_seqs; ++s) query_start[s] = real_tokens;
  std::fill(context_lens + num_chunks, context_lens + packed.num_seqs, 0);
  RS_CHECK(packed.num_sampled == sampled_rows);
  packed.head_rows = head_rows;
  std::fill(sample_rows + packed.num_sampled, sample_rows + packed.head_rows, 0);
  return packed;
}

}  // namespace ringserve::model
