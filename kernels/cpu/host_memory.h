// Host memory a CPU worker may use: the machine's, capped by the memory cgroup the process
// runs in. A Kubernetes container's limit is such a cgroup; without the cap a KV pool sized
// from the node's free memory passes every check and is OOM-killed as it fills.
#ifndef RINGSERVE_KERNELS_CPU_HOST_MEMORY_H_
#define RINGSERVE_KERNELS_CPU_HOST_MEMORY_H_

#include <cstdint>
#include <optional>
#include <string>

namespace ringserve::kernels::cpu {

// Where the readings come from; tests point these at a fake tree.
struct HostMemoryFiles {
  std::string meminfo = "/proc/meminfo";
  std::string self_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
};

struct CgroupMemory {
  uint64_t limit_bytes = 0;
  uint64_t usage_bytes = 0;  // of the cgroup that sets the limit
};

// The tightest memory limit on the process's cgroup and its ancestors (cgroup v2
// memory.max, or v1 memory.limit_in_bytes), with that cgroup's usage; nullopt when none is
// set or the files cannot be read.
std::optional<CgroupMemory> ReadCgroupMemory(const HostMemoryFiles& files = {});

// MemAvailable, capped by what the cgroup limit leaves (limit - usage). 0 when unknown.
uint64_t AvailableHostBytes(const HostMemoryFiles& files = {});

// `physical_bytes` capped by the cgroup limit.
uint64_t HostMemoryLimitBytes(uint64_t physical_bytes, const HostMemoryFiles& files = {});

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_HOST_MEMORY_H_
