// How deep a grammar's rules nest to finish: for each rule's automaton state, the fewest
// frames above the rule's own that any completion of its text needs. The matcher refuses a
// byte after which the text could only be completed beyond kMaxRuleDepth frames, so it
// never takes a text it cannot finish. Private to worker/grammar.
#ifndef RINGSERVE_WORKER_GRAMMAR_RULE_DEPTHS_H_
#define RINGSERVE_WORKER_GRAMMAR_RULE_DEPTHS_H_

#include <vector>

#include "absl/status/status.h"
#include "worker/grammar/grammar_nodes.h"

namespace ringserve::grammar {

// Sets finish_depth and nonempty_finish_depth of the kText nodes of `rules`, a grammar's
// nodes (their automata call one another, and JSON values, by node index, never before
// reading a byte).
// A call in tail position (to a state where the caller may only end: RegexDfa::IsFinal)
// replaces the caller's frame. INVALID_ARGUMENT when the root (node 0) needs more than
// kMaxRuleDepth frames.
absl::Status ComputeFinishDepths(std::vector<Grammar::Node>& rules);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_RULE_DEPTHS_H_
