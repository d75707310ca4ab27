// Picking tokens from rows of logits on the host: the CPU backend's SampleRows and
// LogprobRows, and the engine's path for rows it must change first (penalties). The chain
// and its arithmetic are kernels/row_sampling.h's, so the ids are a GPU's bit for bit.
#ifndef RINGSERVE_KERNELS_CPU_CPU_SAMPLING_H_
#define RINGSERVE_KERNELS_CPU_CPU_SAMPLING_H_

#include <cstdint>
#include <span>

#include "kernels/row_logprobs.h"
#include "kernels/row_sampling.h"

namespace ringserve::kernels::cpu {

// The first index of the largest value, as a plain scan with `>` finds it: a NaN never
// wins, except one in front, which wins everything. 0 for an empty row.
int32_t ArgmaxRow(std::span<const float> row);

// PenalizedLogit for the row's `entries`, each keeping its raw logit (Backend::PenalizeRows
// for one row), and the raw logits back (UnpenalizeRows).
void PenalizeRow(std::span<float> row, const RowSampling& params, std::span<PenaltyEntry> entries);
void UnpenalizeRow(std::span<float> row, std::span<const PenaltyEntry> entries);

// The logprobs of `row` with `chosen` its token (kernels/row_logprobs.h; LogprobRows for one
// row). Uses scratch memory of its thread, kept between calls.
RowLogprobs LogprobRow(std::span<const float> row, int32_t chosen);

// The token `row` picks under `params` (greedy when temperature is 0). Uses scratch memory
// of its thread, kept between calls.
int32_t SampleRow(std::span<const float> row, const RowSampling& params);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_SAMPLING_H_
