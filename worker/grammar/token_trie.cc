#include "worker/grammar/token_trie.h"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/check.h"
#include "worker/grammar/regex.h"

namespace ringserve::grammar {
namespace {

// Tokens longer than this are left out of the trie (never allowed): no vocabulary has
// them, and the walk keeps one matcher per depth.
constexpr size_t kMaxTokenBytes = 1024;

}  // namespace

TokenTrie::TokenTrie(std::vector<std::string> token_bytes) : token_bytes_(std::move(token_bytes)) {
  std::vector<int32_t> ids;
  std::vector<int32_t> special;
  std::vector<std::pair<int32_t, int32_t>> plain;  // (code points, id)
  plain_.assign((token_bytes_.size() + 63) / 64, 0);
  for (size_t id = 0; id < token_bytes_.size(); ++id) {
    const std::string_view bytes = token_bytes_[id];
    if (bytes.empty() || bytes.size() > kMaxTokenBytes) continue;
    ids.push_back(static_cast<int32_t>(id));
    max_depth_ = std::max(max_depth_, static_cast<int32_t>(bytes.size()));
    if (!IsPlainStringText(bytes)) {
      special.push_back(static_cast<int32_t>(id));
      continue;
    }
    plain_[id >> 6] |= uint64_t{1} << (id & 63);
    // Code points: the bytes that are not UTF-8 continuation bytes.
    plain.emplace_back(
        std::count_if(bytes.begin(), bytes.end(), [](char c) { return (c & 0xC0) != 0x80; }),
        static_cast<int32_t>(id));
  }
  all_ = Build(std::move(ids));
  special_ = Build(std::move(special));
  num_plain_ = static_cast<int32_t>(plain.size());
  std::sort(plain.begin(), plain.end());
  for (const auto& [length, id] : plain) {
    plain_lengths_.push_back(length);
    plain_by_length_.push_back(id);
  }
}

int32_t TokenTrie::PlainWithin(int32_t room, TokenBits* allowed) const {
  if (plain_lengths_.empty() || room >= plain_lengths_.back()) {
    *allowed = plain_;
    return num_plain_;
  }
  allowed->assign((token_bytes_.size() + 63) / 64, 0);
  const auto fits =
      static_cast<size_t>(std::upper_bound(plain_lengths_.begin(), plain_lengths_.end(), room) -
                          plain_lengths_.begin());
  for (size_t i = 0; i < fits; ++i) {
    const auto id = static_cast<uint32_t>(plain_by_length_[i]);
    (*allowed)[id >> 6] |= uint64_t{1} << (id & 63);
  }
  return static_cast<int32_t>(fits);
}

TokenTrie::Trie TokenTrie::Build(std::vector<int32_t> ids) const {
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return std::pair(std::string_view(token_bytes_[a]), a) <
           std::pair(std::string_view(token_bytes_[b]), b);
  });
  // Sorted bytes make the trie's preorder: each token shares with the previous one the
  // nodes of their common prefix and adds nodes for the rest of its bytes.
  Trie trie;
  std::vector<int32_t> path;  // open nodes: path[d] is at depth d
  std::string_view previous;
  for (const int32_t id : ids) {
    const std::string_view bytes = token_bytes_[static_cast<size_t>(id)];
    const size_t common = static_cast<size_t>(
        std::mismatch(previous.begin(), previous.end(), bytes.begin(), bytes.end()).first -
        previous.begin());
    while (path.size() > common) {
      trie.nodes[static_cast<size_t>(path.back())].subtree_end =
          static_cast<int32_t>(trie.nodes.size());
      path.pop_back();
    }
    for (size_t d = common; d < bytes.size(); ++d) {
      path.push_back(static_cast<int32_t>(trie.nodes.size()));
      trie.nodes.push_back(
          {.byte = static_cast<uint8_t>(bytes[d]), .depth = static_cast<uint16_t>(d)});
      trie.nodes.back().tokens_begin = trie.nodes.back().tokens_end =
          static_cast<int32_t>(trie.token_ids.size());
    }
    // The token ends at the deepest open node; ids with the same bytes land together.
    trie.token_ids.push_back(id);
    trie.nodes[static_cast<size_t>(path.back())].tokens_end =
        static_cast<int32_t>(trie.token_ids.size());
    previous = bytes;
  }
  for (const int32_t open : path) {
    trie.nodes[static_cast<size_t>(open)].subtree_end = static_cast<int32_t>(trie.nodes.size());
  }
  return trie;
}

int32_t TokenTrie::Allowed(const Matcher& matcher, std::vector<Matcher>& scratch,
                           TokenBits* allowed) const {
  if (const std::optional<int32_t> room = matcher.PlainStringRoom()) {
    const int32_t plain = PlainWithin(*room, allowed);
    return plain + Walk(special_, 0, static_cast<int32_t>(special_.nodes.size()), matcher, scratch,
                        allowed);
  }
  allowed->assign((token_bytes_.size() + 63) / 64, 0);
  if (const std::optional<Matcher::AutomatonState> automaton = matcher.Automaton()) {
    return WalkAutomaton(all_, matcher, *automaton, scratch, allowed);
  }
  return Walk(all_, 0, static_cast<int32_t>(all_.nodes.size()), matcher, scratch, allowed);
}

int32_t TokenTrie::AllowTokensEndingAt(const Trie& trie, const Node& node, TokenBits* allowed) {
  for (int32_t t = node.tokens_begin; t < node.tokens_end; ++t) {
    const auto id = static_cast<uint32_t>(trie.token_ids[static_cast<size_t>(t)]);
    (*allowed)[id >> 6] |= uint64_t{1} << (id & 63);
  }
  return node.tokens_end - node.tokens_begin;
}

int32_t TokenTrie::WalkAutomaton(const Trie& trie, const Matcher& matcher,
                                 const Matcher::AutomatonState& automaton,
                                 std::vector<Matcher>& scratch, TokenBits* allowed) const {
  if (automaton.HandsBack(automaton.state)) {
    return Walk(trie, 0, static_cast<int32_t>(trie.nodes.size()), matcher, scratch, allowed);
  }
  const bool rule =
      automaton.may_return || automaton.finish_depth != nullptr || automaton.dfa->has_calls();
  return rule ? FollowAutomaton<true>(trie, matcher, automaton, scratch, allowed)
              : FollowAutomaton<false>(trie, matcher, automaton, scratch, allowed);
}

template <bool kRule>
int32_t TokenTrie::FollowAutomaton(const Trie& trie, const Matcher& matcher,
                                   const Matcher::AutomatonState& automaton,
                                   std::vector<Matcher>& scratch, TokenBits* allowed) const {
  const RegexDfa& dfa = *automaton.dfa;
  // states[d] is the automaton's state after the first d bytes of the current node's path,
  // and path[0, d) those bytes.
  std::vector<int32_t> states(static_cast<size_t>(max_depth_) + 1);
  std::string path(static_cast<size_t>(max_depth_), '\0');
  states[0] = automaton.state;
  // The matcher after the first `depth` bytes of the path, which the automaton took, in
  // scratch[depth]: the walk handed that subtree starts there (Walk leaves it be), and its
  // storage is reused from walk to walk.
  if (scratch.size() < states.size()) scratch.resize(states.size(), matcher);
  const auto matcher_after = [&](size_t depth) -> const Matcher& {
    Matcher& after = scratch[depth];
    after = matcher;
    for (size_t d = 0; d < depth; ++d) {
      const bool taken = after.Advance(static_cast<uint8_t>(path[d]));
      RS_CHECK(taken);  // the automaton took these bytes, and the matcher follows it
    }
    return after;
  };
  int32_t num_allowed = 0;
  const auto n = static_cast<int32_t>(trie.nodes.size());
  for (int32_t i = 0; i < n;) {
    const Node& node = trie.nodes[static_cast<size_t>(i)];
    const int32_t from = states[node.depth];
    if (!kRule && automaton.in_string && node.byte == '"') {
      // The string closes here when its text matches; what follows is the grammar's.
      if (dfa.Accepting(from)) {
        num_allowed += Walk(trie, i, node.subtree_end, matcher_after(node.depth), scratch, allowed);
      }
      i = node.subtree_end;
      continue;
    }
    const int32_t next = kRule ? automaton.Next(from, node.byte) : dfa.Next(from, node.byte);
    if (next == RegexDfa::kDead) {
      i = node.subtree_end;
      continue;
    }
    states[node.depth + 1U] = next;
    path[node.depth] = static_cast<char>(node.byte);
    num_allowed += AllowTokensEndingAt(trie, node, allowed);
    if (kRule && automaton.HandsBack(next)) {
      // A call or a return may follow: the matcher walks this node's subtree.
      num_allowed +=
          Walk(trie, i + 1, node.subtree_end, matcher_after(node.depth + 1U), scratch, allowed);
      i = node.subtree_end;
      continue;
    }
    ++i;
  }
  return num_allowed;
}

int32_t TokenTrie::Walk(const Trie& trie, int32_t begin, int32_t end, const Matcher& matcher,
                        std::vector<Matcher>& scratch, TokenBits* allowed) const {
  // scratch[d] is the matcher after the first d bytes of the current node's path.
  const size_t depths = static_cast<size_t>(max_depth_) + 1;
  if (scratch.size() < depths) scratch.resize(depths, matcher);
  if (begin >= end) return 0;
  scratch[trie.nodes[static_cast<size_t>(begin)].depth] = matcher;
  int32_t num_allowed = 0;
  for (int32_t i = begin; i < end;) {
    const Node& node = trie.nodes[static_cast<size_t>(i)];
    Matcher& state = scratch[node.depth + 1U];
    state = scratch[node.depth];
    if (!state.Advance(node.byte)) {
      i = node.subtree_end;  // no token under this prefix can follow
      continue;
    }
    num_allowed += AllowTokensEndingAt(trie, node, allowed);
    ++i;
  }
  return num_allowed;
}

}  // namespace ringserve::grammar
