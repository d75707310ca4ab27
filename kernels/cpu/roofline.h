// Machine ceilings for the CPU backend, printed by `ringserve-run bench` beside measured
// decode and prefill speed: decode is bound by streaming the weights once per step,
// prefill by FLOP rate.
#ifndef RINGSERVE_KERNELS_CPU_ROOFLINE_H_
#define RINGSERVE_KERNELS_CPU_ROOFLINE_H_

#include <cstddef>

namespace ringserve::kernels::cpu {

// Bytes/s of a threaded streaming read-and-reduce over `bytes` (pick much larger than the
// last-level cache), best of a few repetitions. num_threads 0 = one per core.
double MeasureReadBandwidth(size_t bytes, int num_threads);

// FLOP/s of cblas_sgemm for y[n, m] = x[n, k] * W[m, k]^T with OpenBLAS's current thread
// count, best of a few repetitions.
double MeasureBlasSgemmFlops(int n, int m, int k);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_ROOFLINE_H_
