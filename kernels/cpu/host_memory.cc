#include "kernels/cpu/host_memory.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace ringserve::kernels::cpu {
namespace {

namespace fs = std::filesystem;

// cgroup v1 writes "no limit" as the largest page-aligned int64, not a word.
constexpr uint64_t kUnlimitedV1 = uint64_t{1} << 62;

std::optional<uint64_t> ReadNumber(const fs::path& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::nullopt;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return std::nullopt;  // "max": no limit
  return value;
}

// The directories a limit can sit on: the process's cgroup and each ancestor up to the
// mount, and the mount itself (the whole cgroup in a container's namespace).
std::vector<fs::path> CgroupDirectories(const fs::path& mount, absl::string_view cgroup_path) {
  std::vector<fs::path> dirs;
  fs::path relative = fs::path(std::string(absl::StripPrefix(cgroup_path, "/")));
  while (!relative.empty()) {
    dirs.push_back(mount / relative);
    relative = relative.parent_path();
  }
  dirs.push_back(mount);
  return dirs;
}

// Lines of /proc/self/cgroup are "ID:CONTROLLERS:PATH"; v2 has ID 0 and no controllers.
std::optional<std::string> CgroupPath(const std::string& self_cgroup, bool v2) {
  std::ifstream in(self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    const std::vector<absl::string_view> controllers = absl::StrSplit(fields[1], ',');
    const bool memory =
        std::find(controllers.begin(), controllers.end(), "memory") != controllers.end();
    if (v2 ? (fields[0] == "0" && fields[1].empty()) : memory) {
      return std::string(fields[2]);
    }
  }
  return std::nullopt;
}

std::optional<CgroupMemory> Tightest(const std::vector<fs::path>& dirs, const char* limit_file,
                                     const char* usage_file) {
  std::optional<CgroupMemory> tightest;
  for (const fs::path& dir : dirs) {
    const std::optional<uint64_t> limit = ReadNumber(dir / limit_file);
    if (!limit || *limit >= kUnlimitedV1) continue;
    if (tightest && tightest->limit_bytes <= *limit) continue;
    tightest = CgroupMemory{.limit_bytes = *limit,
                            .usage_bytes = ReadNumber(dir / usage_file).value_or(0)};
  }
  return tightest;
}

}  // namespace

std::optional<CgroupMemory> ReadCgroupMemory(const HostMemoryFiles& files) {
  const fs::path root = files.cgroup_root;
  if (const std::optional<std::string> v1 = CgroupPath(files.self_cgroup, /*v2=*/false)) {
    if (auto found = Tightest(CgroupDirectories(root / "memory", *v1), "memory.limit_in_bytes",
                              "memory.usage_in_bytes")) {
      return found;
    }
  }
  if (const std::optional<std::string> v2 = CgroupPath(files.self_cgroup, /*v2=*/true)) {
    return Tightest(CgroupDirectories(root, *v2), "memory.max", "memory.current");
  }
  return std::nullopt;
}

uint64_t AvailableHostBytes(const HostMemoryFiles& files) {
  uint64_t available = 0;
  std::ifstream meminfo(files.meminfo);
  std::string key;
  std::string unit;
  uint64_t value_kb = 0;
  while (meminfo >> key >> value_kb >> unit) {
    if (key == "MemAvailable:") {
      available = value_kb * 1024;
      break;
    }
  }
  if (const std::optional<CgroupMemory> cgroup = ReadCgroupMemory(files)) {
    const uint64_t left =
        cgroup->limit_bytes > cgroup->usage_bytes ? cgroup->limit_bytes - cgroup->usage_bytes : 0;
    available = available == 0 ? left : std::min(available, left);
  }
  return available;
}

uint64_t HostMemoryLimitBytes(uint64_t physical_bytes, const HostMemoryFiles& files) {
  const std::optional<CgroupMemory> cgroup = ReadCgroupMemory(files);
  if (!cgroup) return physical_bytes;
  return physical_bytes == 0 ? cgroup->limit_bytes : std::min(physical_bytes, cgroup->limit_bytes);
}

}  // namespace ringserve::kernels::cpu
