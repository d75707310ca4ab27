// IdList: a doubly linked list over the dense ids [0, capacity), the LRU order of the block
// pool's free blocks and of the host tier's slots. Push at either end, remove any member and
// test membership in O(1); no allocation after construction.
#ifndef RINGSERVE_KVCACHE_ID_LIST_H_
#define RINGSERVE_KVCACHE_ID_LIST_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace ringserve::kvcache {

class IdList {
 public:
  static constexpr int32_t kNone = -1;

  explicit IdList(int32_t capacity);

  int32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool Contains(int32_t id) const;
  int32_t front() const { return head_; }  // kNone when empty
  int32_t back() const { return tail_; }
  int32_t Next(int32_t id) const { return links_[static_cast<size_t>(id)].next; }

  // id must not be a member.
  void PushFront(int32_t id);
  void PushBack(int32_t id);
  // id must be a member.
  void Remove(int32_t id);

  // Members from front to back. O(size): for tests and validation.
  std::vector<int32_t> ToVector() const;
  // Links agree both ways, the walk from the front ends at the back after size() members.
  absl::Status Validate() const;

 private:
  struct Links {
    int32_t prev = kNone;
    int32_t next = kNone;
    bool member = false;
  };
  std::vector<Links> links_;
  int32_t head_ = kNone;
  int32_t tail_ = kNone;
  int32_t size_ = 0;
};

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_ID_LIST_H_
