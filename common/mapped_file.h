// A read-only memory mapping of a whole file. Model weights are read through it so the
// kernel's page cache holds the only copy of an F32 checkpoint.
#ifndef RINGSERVE_COMMON_MAPPED_FILE_H_
#define RINGSERVE_COMMON_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace ringserve {

class MappedFile {
 public:
  // Maps `path` read-only. Errors name the file.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::string& path() const { return path_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_MAPPED_FILE_H_
