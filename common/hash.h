// Stable 64-bit hashing (xxHash64, seedless): identical in every process and on every
// machine, so it may be used for anything that crosses a process boundary (the router's
// ring, prefix-cache block keys). Never use std::hash or absl::Hash for those.
#ifndef RINGSERVE_COMMON_HASH_H_
#define RINGSERVE_COMMON_HASH_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringserve {

uint64_t Hash64(const void* data, size_t size, uint64_t seed = 0);

inline uint64_t Hash64(std::string_view s, uint64_t seed = 0) {
  return Hash64(s.data(), s.size(), seed);
}

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_HASH_H_
