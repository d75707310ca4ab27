// The GGUF reader's bounds-checked view of the file, shared by its two halves:
// gguf_reader.cc (header, tensor infos, data layout) and gguf_metadata.cc (key/value
// pairs). Internal to them; users go through GgufFile (gguf_reader.h).
#ifndef RINGSERVE_WORKER_MODEL_GGUF_CURSOR_H_
#define RINGSERVE_WORKER_MODEL_GGUF_CURSOR_H_

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "worker/model/gguf_reader.h"

namespace ringserve::model {

// Reads little-endian values from the image; every read is bounds-checked and errors
// name the file and what was being read.
class GgufCursor {
 public:
  GgufCursor(std::span<const uint8_t> bytes, const std::string& name)
      : bytes_(bytes), name_(name) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", what));
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    if (remaining() < sizeof(T)) {
      return Error(absl::StrCat("truncated at byte ", pos_, " reading ", what));
    }
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  absl::StatusOr<std::string> ReadString(absl::string_view what) {
    RS_ASSIGN_OR_RETURN(const uint64_t length, Read<uint64_t>(what));
    if (length > remaining()) {
      return Error(absl::StrCat(what, ": string length ", length, " exceeds the ", remaining(),
                                " bytes left in the file"));
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  // Checks that `count` items of at least `min_item_bytes` each can still fit.
  absl::Status CheckCount(uint64_t count, uint64_t min_item_bytes, absl::string_view what) const {
    if (min_item_bytes > 0 && count > remaining() / min_item_bytes) {
      return Error(absl::StrCat(what, " count ", count, " cannot fit in the ", remaining(),
                                " bytes left in the file"));
    }
    return absl::OkStatus();
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

// Reads the value (type tag, then scalar or array) of metadata key `key`, which the cursor
// has just passed.
absl::StatusOr<GgufValue> ReadGgufValue(GgufCursor& c, const std::string& key);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_CURSOR_H_
