// Picking tokens from rows of logits on the host: the CPU backend's SampleRows, and the
// engine's path for rows it must change first (penalties). The chain
// and its arithmetic are kernels/row_sampling.h's, so the ids are a GPU's bit for bit.
#ifndef RINGSERVE_KERNELS_CPU_CPU_SAMPLING_H_
#define RINGSERVE_KERNELS_CPU_CPU_SAMPLING_H_

#include <cstdint>
#include <span>

#include "kernels/row_sampling.h"

namespace ringserve::kernels::cpu {

// The first index of the largest value, as a plain scan with `>` finds it: a NaN never
// wins, except one in front, which wins everything. 0 for an empty row.
int32_t ArgmaxRow(std::span<const float> row);

// PenalizedLogit for the row's `entries` (Backend::PenalizeRows for one row).
void PenalizeRow(std::span<float> row, const RowSampling& params,
                 std::span<const PenaltyEntry> entries);

// The token `row` picks under `params` (greedy when temperature is 0). Uses scratch memory
// of its thread, kept between calls.
int32_t SampleRow(std::span<const float> row, const RowSampling& params);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_SAMPLING_H_
