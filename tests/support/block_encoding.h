// Float values written as the CPU's quantized block dtypes (Q8_0, kQ4Affine, kQ5Affine,
// kIQ4, kQ6), for tests and benchmarks that need weights of each: a plain fit of each block's
// range, without a file format's search for the scales of least error.
#ifndef RINGSERVE_TESTS_SUPPORT_BLOCK_ENCODING_H_
#define RINGSERVE_TESTS_SUPPORT_BLOCK_ENCODING_H_

#include <cstdint>
#include <vector>

#include "kernels/dtype.h"

namespace ringserve::testing {

// `values` (a multiple of 32 of them) as blocks of `dtype` (IsBlockDType). Q8_0: an f16
// scale of the block's largest magnitude / 127; the affine types: the block's minimum and
// range over the top quant; kIQ4: the scale that maps the largest magnitude to level -127 or
// 113, each value its nearest level; kQ6: each half's largest magnitude as quant 31 (or -32),
// its scale quantized to int8 under the f16 block scale.
std::vector<uint8_t> EncodeBlocks(kernels::DType dtype, const std::vector<float>& values);

}  // namespace ringserve::testing

#endif  // RINGSERVE_TESTS_SUPPORT_BLOCK_ENCODING_H_
