#include "common/hash.h"

#include <xxhash.h>

namespace ringserve {

uint64_t Hash64(const void* data, size_t size, uint64_t seed) {
  return XXH64(data, size, seed);
}

}  // namespace ringserve
