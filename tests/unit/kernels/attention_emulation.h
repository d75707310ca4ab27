// A host emulation of the CUDA attention kernel's arithmetic (kernels/cuda/attention.cu),
// operation for operation with the helpers of kernels/cuda/cuda_index.h. Built with
// -ffp-contract=off, it gives the device's bits: the GPU test compares the kernel with it bit
// for bit, and on the CPU it proves the design's claims (every way of scheduling a row gives
// the same bits; the result matches float64) without a GPU.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_ATTENTION_EMULATION_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_ATTENTION_EMULATION_H_

#include <functional>
#include <vector>

namespace ringserve::kernels::testing {

struct EmulatedRow {
  const float* q = nullptr;  // head_dim values
  int head_dim = 0;
  float scale = 0;
  int position = 0;                           // attends to keys first_key..position
  int first_key = 0;                          // cuda::FirstKey(position, window)
  std::function<const float*(int key)> k, v;  // head_dim values of key `key` of its kv head
};

// How the kernel schedules the row: in a thread block whose item loads keys
// 0..load_limit-1 (load_limit >= position + 1: the item's last token), merging its splits
// in place; or split-parallel (one block per split, merged by MergeSplitsKernel).
struct EmulatedSchedule {
  int load_limit = 0;
  bool split_parallel = false;
};

// The row's output before it is rounded to the activation dtype.
std::vector<float> EmulateAttentionRow(const EmulatedRow& row, const EmulatedSchedule& schedule);

}  // namespace ringserve::kernels::testing

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_ATTENTION_EMULATION_H_
