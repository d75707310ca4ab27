// The vocabulary as a byte trie, for computing which tokens a grammar allows next.
//
// A token may be sampled under a Matcher when the matcher takes every byte of it.
// Tokens share prefixes ("{", "{\"", "{\"name"), so walking the trie in preorder and
// skipping a node's whole subtree when the matcher refuses its byte tests each distinct
// prefix once; the nodes are stored in preorder with each subtree's end, so the walk is a
// loop over an array. Tokens without bytes (control tokens) are not in the trie: a grammar
// never allows them.
//
// Inside a string most of a vocabulary is plain string text (IsPlainStringText: no quote,
// backslash, control byte or partial UTF-8), which a plain string takes whenever its code
// points fit before maxLength (Matcher::PlainStringRoom). Those tokens are kept as a
// ready mask and in order of length, and a second trie holds only the others, so a mask
// inside such a string walks a few percent of the nodes.
//
// Where a regex automaton alone decides (Matcher::Automaton: a regex reply, or a string
// under a "pattern"), the walk follows the automaton, one table lookup per node, instead of
// copying the matcher per node; inside a pattern string a quote hands the node's subtree
// back to the matcher.
//
// Ownership and threads: built once per model, immutable, shared by every job's
// constraint on any thread.
#ifndef RINGSERVE_WORKER_GRAMMAR_TOKEN_TRIE_H_
#define RINGSERVE_WORKER_GRAMMAR_TOKEN_TRIE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "worker/grammar/matcher.h"

namespace ringserve::grammar {

// One bit per token of the vocabulary.
using TokenBits = std::vector<uint64_t>;

inline bool HasToken(const TokenBits& bits, int32_t id) {
  return ((bits[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1U) != 0;
}

class TokenTrie {
 public:
  // token_bytes[id]: the bytes token `id` decodes to (empty: never allowed).
  explicit TokenTrie(std::vector<std::string> token_bytes);

  int32_t vocab_size() const { return static_cast<int32_t>(token_bytes_.size()); }
  std::string_view Bytes(int32_t id) const { return token_bytes_[static_cast<size_t>(id)]; }

  // Sets bit id of `allowed` (id % 64 of word id / 64) for every token whose bytes `matcher`
  // takes in full and clears the others; returns how many are allowed. `scratch` holds one
  // matcher per trie depth between calls, so a job's steps reuse its storage.
  int32_t Allowed(const Matcher& matcher, std::vector<Matcher>& scratch, TokenBits* allowed) const;

  int32_t num_nodes() const { return static_cast<int32_t>(all_.nodes.size()); }
  // The nodes a mask inside a plain string walks, and the tokens it allows without a walk.
  int32_t num_special_nodes() const { return static_cast<int32_t>(special_.nodes.size()); }
  int32_t num_plain_tokens() const { return num_plain_; }
  // The most bytes a token in the trie has: how far one token can move a matcher.
  int32_t max_token_bytes() const { return max_depth_; }

 private:
  struct Node {
    uint8_t byte = 0;
    uint16_t depth = 0;        // of the node's parent: the root's children have depth 0
    int32_t subtree_end = 0;   // index after the last node of this node's subtree
    int32_t tokens_begin = 0;  // into Trie::token_ids: the tokens whose bytes end here
    int32_t tokens_end = 0;
  };
  struct Trie {
    std::vector<Node> nodes;         // preorder
    std::vector<int32_t> token_ids;  // grouped by the node they end at
  };

  // The trie of the tokens `ids` (non-empty, at most kMaxTokenBytes bytes each).
  Trie Build(std::vector<int32_t> ids) const;
  // Sets the bits of the tokens of nodes [begin, end) of `trie` that `matcher` takes, the
  // nodes being whole subtrees whose roots are at the depth of `begin` and `matcher` the
  // state after the bytes above them; returns how many.
  int32_t Walk(const Trie& trie, int32_t begin, int32_t end, const Matcher& matcher,
               std::vector<Matcher>& scratch, TokenBits* allowed) const;
  // The same over the whole trie where `matcher` is inside an automaton.
  int32_t WalkAutomaton(const Trie& trie, const Matcher& matcher,
                        const Matcher::AutomatonState& automaton, std::vector<Matcher>& scratch,
                        TokenBits* allowed) const;
  // WalkAutomaton's loop; kRule: a grammar rule's automaton, which hands subtrees back
  // where it may call or return (a regex's, the common case, needs no such test per node).
  template <bool kRule>
  int32_t FollowAutomaton(const Trie& trie, const Matcher& matcher,
                          const Matcher::AutomatonState& automaton, std::vector<Matcher>& scratch,
                          TokenBits* allowed) const;

  // Sets the bits of the tokens whose bytes end at `node`; returns how many.
  static int32_t AllowTokensEndingAt(const Trie& trie, const Node& node, TokenBits* allowed);

  // Sets the bits of the plain-text tokens of at most `room` code points; returns how many.
  int32_t PlainWithin(int32_t room, TokenBits* allowed) const;

  std::vector<std::string> token_bytes_;
  Trie all_;         // every token with bytes
  Trie special_;     // those that are not plain string text
  TokenBits plain_;  // those that are
  int32_t num_plain_ = 0;
  // The plain-text tokens by code points, fewest first, and each one's count.
  std::vector<int32_t> plain_by_length_;
  std::vector<int32_t> plain_lengths_;
  int32_t max_depth_ = 0;
};

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_TOKEN_TRIE_H_
