// What an embedding's caller makes of JobResult::embedding: the Matryoshka cut and the
// scaling to unit length that Inference.Embed and `ringserve-run --embed` both apply.
#ifndef RINGSERVE_WORKER_ENGINE_EMBEDDING_H_
#define RINGSERVE_WORKER_ENGINE_EMBEDDING_H_

#include <vector>

namespace ringserve::engine {

// Keeps the first `dimensions` values (0, or at least the size: all of them), then, with
// `normalize`, scales them to unit L2 norm (summed in double; all zeros stay zeros).
void FinishEmbedding(std::vector<float>& values, int dimensions, bool normalize);

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_EMBEDDING_H_
