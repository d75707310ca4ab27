#include "worker/grammar/token_trie.h"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <utility>

#include "common/check.h"

namespace ringserve::grammar {
namespace {

// Tokens longer than this are left out of the trie (never allowed): no vocabulary has
// them, and the walk keeps one matcher per depth.
constexpr size_t kMaxTokenBytes = 1024;

}  // namespace

TokenTrie::TokenTrie(std::vector<std::string> token_bytes) : token_bytes_(std::move(token_bytes)) {
  std::vector<int32_t> order;
  for (size_t id = 0; id < token_bytes_.size(); ++id) {
    const size_t size = token_bytes_[id].size();
    if (size > 0 && size <= kMaxTokenBytes) order.push_back(static_cast<int32_t>(id));
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return std::pair(std::string_view(token_bytes_[a]), a) <
           std::pair(std::string_view(token_bytes_[b]), b);
  });
  // Sorted bytes make the trie's preorder: each token shares with the previous one the
  // nodes of their common prefix and adds nodes for the rest of its bytes.
  std::vector<int32_t> path;  // open nodes: path[d] is at depth d
  std::string_view previous;
  for (const int32_t id : order) {
    const std::string_view bytes = token_bytes_[static_cast<size_t>(id)];
    const size_t common = static_cast<size_t>(
        std::mismatch(previous.begin(), previous.end(), bytes.begin(), bytes.end()).first -
        previous.begin());
    while (path.size() > common) {
      nodes_[static_cast<size_t>(path.back())].subtree_end = static_cast<int32_t>(nodes_.size());
      path.pop_back();
    }
    for (size_t d = common; d < bytes.size(); ++d) {
      path.push_back(static_cast<int32_t>(nodes_.size()));
      nodes_.push_back({.byte = static_cast<uint8_t>(bytes[d]), .depth = static_cast<uint16_t>(d)});
      nodes_.back().tokens_begin = nodes_.back().tokens_end =
          static_cast<int32_t>(token_ids_.size());
    }
    // The token ends at the deepest open node; ids with the same bytes land together.
    token_ids_.push_back(id);
    nodes_[static_cast<size_t>(path.back())].tokens_end = static_cast<int32_t>(token_ids_.size());
    max_depth_ = std::max(max_depth_, static_cast<int32_t>(bytes.size()));
    previous = bytes;
  }
  for (const int32_t open : path) {
    nodes_[static_cast<size_t>(open)].subtree_end = static_cast<int32_t>(nodes_.size());
  }
}

int32_t TokenTrie::Allowed(const JsonMatcher& matcher, std::vector<JsonMatcher>& scratch,
                           TokenBits* allowed) const {
  allowed->assign((token_bytes_.size() + 63) / 64, 0);
  // scratch[d] is the matcher after the first d bytes of the current node's path.
  const size_t depths = static_cast<size_t>(max_depth_) + 1;
  if (scratch.size() < depths) scratch.resize(depths, matcher);
  scratch[0] = matcher;
  int32_t num_allowed = 0;
  const auto n = static_cast<int32_t>(nodes_.size());
  for (int32_t i = 0; i < n;) {
    const Node& node = nodes_[static_cast<size_t>(i)];
    JsonMatcher& state = scratch[node.depth + 1U];
    state = scratch[node.depth];
    if (!state.Advance(node.byte)) {
      i = node.subtree_end;  // no token under this prefix can follow
      continue;
    }
    for (int32_t t = node.tokens_begin; t < node.tokens_end; ++t) {
      const auto id = static_cast<uint32_t>(token_ids_[static_cast<size_t>(t)]);
      (*allowed)[id >> 6] |= uint64_t{1} << (id & 63);
    }
    num_allowed += node.tokens_end - node.tokens_begin;
    ++i;
  }
  return num_allowed;
}

}  // namespace ringserve::grammar
