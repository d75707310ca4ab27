// A forward pass's metadata (token ids, positions, KV slots, sequence starts, context
// lengths, sampled rows, block tables), packed on the host into one int32 array so the pass
// uploads it in one copy.
#ifndef RINGSERVE_WORKER_MODEL_BATCH_METADATA_H_
#define RINGSERVE_WORKER_MODEL_BATCH_METADATA_H_

#include <cstdint>
#include <span>

#include "worker/model/llama_model.h"

namespace ringserve::model {

// Where each array sits (offsets in int32s) for a pass of `tokens` token rows and `seqs`
// sequences: ids, positions, slots, token_seq, lora_slots [tokens each], query_start
// [seqs + 1], context_lens [seqs], sample_rows [sampled rows], block_tables [seqs,
// blocks_per_seq].
struct MetaLayout {
  MetaLayout(int64_t tokens, int64_t seqs, int64_t sampled_rows, int64_t blocks_per_seq)
      : positions(tokens),
        slots(2 * tokens),
        token_seq(3 * tokens),
        lora_slots(4 * tokens),
        query_start(5 * tokens),
        context_lens(query_start + seqs + 1),
        sample_rows(context_lens + seqs),
        block_tables(sample_rows + sampled_rows),
        size(block_tables + seqs * blocks_per_seq) {}

  int64_t ids = 0, positions, slots, token_seq, lora_slots, query_start, context_lens, sample_rows,
          block_tables, size;
};

struct PackedBatch {
  MetaLayout layout;
  int num_tokens = 0;       // token rows, padding included
  int num_seqs = 0;         // sequences, padding included
  int max_context_len = 0;  // of the real sequences
  int num_sampled = 0;      // rows that sample (SampledRows): sample_rows[0, num_sampled)
  int head_rows = 0;        // rows sample_rows lists: num_sampled, or padded_size
};

// Packs validated `chunks` into `meta` (room for MetaLayout(max tokens, max seqs,
// max sampled rows, blocks_per_seq).size ints). With padded_size > 0 (>= the chunks' tokens and
// count) the pass is padded to padded_size token rows and sequences, as kernels::AttentionBatch
// describes: padding tokens have id 0, position 0, slot -1, sequence -1 and no adapter, padding
// sequences no tokens and context 0, and the head's padding rows repeat row 0. Rows of
// block_tables past a sequence's own blocks keep whatever they held (never read).
PackedBatch PackBatch(std::span<const SequenceChunk> chunks, int padded_size, int block_size,
                      int blocks_per_seq, int32_t* meta);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_BATCH_METADATA_H_
