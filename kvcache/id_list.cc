#include "kvcache/id_list.h"

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

IdList::IdList(int32_t capacity) {
  RS_CHECK(capacity >= 0);
  links_.resize(static_cast<size_t>(capacity));
}

bool IdList::Contains(int32_t id) const {
  RS_CHECK(id >= 0 && static_cast<size_t>(id) < links_.size());
  return links_[static_cast<size_t>(id)].member;
}

void IdList::PushFront(int32_t id) {
  RS_CHECK(!Contains(id));
  Links& l = links_[static_cast<size_t>(id)];
  l = Links{.prev = kNone, .next = head_, .member = true};
  if (head_ != kNone) links_[static_cast<size_t>(head_)].prev = id;
  head_ = id;
  if (tail_ == kNone) tail_ = id;
  ++size_;
}

void IdList::PushBack(int32_t id) {
  RS_CHECK(!Contains(id));
  Links& l = links_[static_cast<size_t>(id)];
  l = Links{.prev = tail_, .next = kNone, .member = true};
  if (tail_ != kNone) links_[static_cast<size_t>(tail_)].next = id;
  tail_ = id;
  if (head_ == kNone) head_ = id;
  ++size_;
}

void IdList::Remove(int32_t id) {
  RS_CHECK(Contains(id));
  Links& l = links_[static_cast<size_t>(id)];
  if (l.prev != kNone) {
    links_[static_cast<size_t>(l.prev)].next = l.next;
  } else {
    head_ = l.next;
  }
  if (l.next != kNone) {
    links_[static_cast<size_t>(l.next)].prev = l.prev;
  } else {
    tail_ = l.prev;
  }
  l = Links{};
  --size_;
}

std::vector<int32_t> IdList::ToVector() const {
  std::vector<int32_t> order;
  for (int32_t id = head_; id != kNone && order.size() <= links_.size(); id = Next(id)) {
    order.push_back(id);
  }
  return order;
}

absl::Status IdList::Validate() const {
  const std::vector<int32_t> order = ToVector();
  if (static_cast<int32_t>(order.size()) != size_) {
    return absl::InternalError(absl::StrCat("list walk finds ", order.size(), " ids, size is ",
                                            size_, " (or the list has a cycle)"));
  }
  int32_t num_members = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const Links& l = links_[static_cast<size_t>(order[i])];
    if (!l.member) return absl::InternalError(absl::StrCat("id ", order[i], " is not a member"));
    if (l.prev != (i == 0 ? kNone : order[i - 1])) {
      return absl::InternalError(absl::StrCat("id ", order[i], " has a bad prev link"));
    }
  }
  for (const Links& l : links_) num_members += l.member ? 1 : 0;
  if (num_members != size_) {
    return absl::InternalError(
        absl::StrCat(num_members, " ids are marked members, the list holds ", size_));
  }
  if (tail_ != (order.empty() ? kNone : order.back())) {
    return absl::InternalError("list tail is wrong");
  }
  return absl::OkStatus();
}

}  // namespace ringserve::kvcache
