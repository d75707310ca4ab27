// The vocabulary as a byte trie, for computing which tokens a grammar allows next.
//
// A token may be sampled under a JsonMatcher when the matcher takes every byte of it.
// Tokens share prefixes ("{", "{\"", "{\"name"), so walking the trie in preorder and
// skipping a node's whole subtree when the matcher refuses its byte tests each distinct
// prefix once; the nodes are stored in preorder with each subtree's end, so the walk is a
// loop over an array. Tokens without bytes (control tokens) are not in the trie: a grammar
// never allows them.
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

#include "worker/grammar/json_matcher.h"

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
  int32_t Allowed(const JsonMatcher& matcher, std::vector<JsonMatcher>& scratch,
                  TokenBits* allowed) const;

  int32_t num_nodes() const { return static_cast<int32_t>(nodes_.size()); }
  // The most bytes a token in the trie has: how far one token can move a matcher.
  int32_t max_token_bytes() const { return max_depth_; }

 private:
  struct Node {
    uint8_t byte = 0;
    uint16_t depth = 0;        // of the node's parent: the root's children have depth 0
    int32_t subtree_end = 0;   // index after the last node of this node's subtree
    int32_t tokens_begin = 0;  // into token_ids_: the tokens whose bytes end here
    int32_t tokens_end = 0;
  };

  std::vector<std::string> token_bytes_;
  std::vector<Node> nodes_;         // preorder
  std::vector<int32_t> token_ids_;  // grouped by the node they end at
  int32_t max_depth_ = 0;
};

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_TOKEN_TRIE_H_
