// Regex → Thompson NFA over bytes → DFA by subset construction → pruned to the states that
// can still reach a match.
#include "worker/grammar/regex.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/grammar/regex_syntax.h"
#include "worker/grammar/utf8_sequences.h"

namespace ringserve::grammar {
// The builders' types are internal; DfaBuilder, a friend of RegexDfa, cannot be in an
// unnamed namespace, nor can what it holds.
namespace regex_internal {

// NFA states a pattern may expand to (counted repeats copy their operand).
constexpr size_t kMaxNfaStates = 200000;

absl::Status TooComplex(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("regex: too complex (", std::string(what),
                                                 "); simplify the pattern or lower its counts"));
}

struct NfaState {
  ByteRange range{.first = 1, .last = 0};  // empty (first > last): no byte edge
  int32_t call = -1;                       // a call edge of this rule instead
  int32_t on_byte = -1;                    // where the byte edge or the call edge leads
  std::vector<int32_t> epsilon;
};

struct Fragment {
  int32_t start = 0;
  int32_t end = 0;  // gets epsilon edges to what follows
};

class NfaBuilder {
 public:
  absl::StatusOr<int32_t> Build(const RegexNode& root) {
    RS_ASSIGN_OR_RETURN(const Fragment whole, Emit(root));
    match_ = whole.end;
    return whole.start;
  }
  std::vector<NfaState>& states() { return states_; }
  int32_t match() const { return match_; }

 private:
  absl::StatusOr<int32_t> New() {
    if (states_.size() >= kMaxNfaStates) return TooComplex("automaton over 200000 NFA states");
    states_.emplace_back();
    return static_cast<int32_t>(states_.size() - 1);
  }
  void Link(int32_t from, int32_t to) { states_[static_cast<size_t>(from)].epsilon.push_back(to); }

  absl::StatusOr<Fragment> Emit(const RegexNode& node);
  absl::StatusOr<Fragment> EmitSet(const CodePointSet& set);
  absl::StatusOr<Fragment> EmitRepeat(const RegexNode& node);

  std::vector<NfaState> states_;
  int32_t match_ = -1;
};

absl::StatusOr<Fragment> NfaBuilder::Emit(const RegexNode& node) {
  switch (node.kind) {
    case RegexNode::Kind::kEmpty: {
      RS_ASSIGN_OR_RETURN(const int32_t s, New());
      return Fragment{.start = s, .end = s};
    }
    case RegexNode::Kind::kSet:
      return EmitSet(node.set);
    case RegexNode::Kind::kConcat: {
      RS_ASSIGN_OR_RETURN(Fragment whole, Emit(node.children[0]));
      for (size_t i = 1; i < node.children.size(); ++i) {
        RS_ASSIGN_OR_RETURN(const Fragment next, Emit(node.children[i]));
        Link(whole.end, next.start);
        whole.end = next.end;
      }
      return whole;
    }
    case RegexNode::Kind::kAlternate: {
      RS_ASSIGN_OR_RETURN(const int32_t start, New());
      RS_ASSIGN_OR_RETURN(const int32_t end, New());
      for (const RegexNode& child : node.children) {
        RS_ASSIGN_OR_RETURN(const Fragment branch, Emit(child));
        Link(start, branch.start);
        Link(branch.end, end);
      }
      return Fragment{.start = start, .end = end};
    }
    case RegexNode::Kind::kRepeat:
      return EmitRepeat(node);
    case RegexNode::Kind::kCall: {
      RS_ASSIGN_OR_RETURN(const int32_t call, New());
      RS_ASSIGN_OR_RETURN(const int32_t end, New());
      states_[static_cast<size_t>(call)].call = node.rule;
      states_[static_cast<size_t>(call)].on_byte = end;
      return Fragment{.start = call, .end = end};
    }
  }
  return absl::InternalError("regex: unknown node");
}

// One path of byte edges per UTF-8 sequence of the set. Sequences that end in k bytes of
// any continuation (80..BF) share those k states, so that a set such as '.' adds a few
// states to the automaton rather than one per sequence and byte.
absl::StatusOr<Fragment> NfaBuilder::EmitSet(const CodePointSet& set) {
  constexpr ByteRange kAnyContinuation{.first = 0x80, .last = 0xBF};
  RS_ASSIGN_OR_RETURN(const int32_t start, New());
  RS_ASSIGN_OR_RETURN(const int32_t end, New());
  std::vector<int32_t> tails = {end};  // tails[k]: k continuation bytes lead to end
  const auto tail = [&](size_t k) -> absl::StatusOr<int32_t> {
    while (tails.size() <= k) {
      RS_ASSIGN_OR_RETURN(const int32_t state, New());
      states_[static_cast<size_t>(state)].range = kAnyContinuation;
      states_[static_cast<size_t>(state)].on_byte = tails.back();
      tails.push_back(state);
    }
    return tails[k];
  };
  for (const std::vector<ByteRange>& sequence : Utf8Sequences(set)) {
    size_t shared = 0;  // trailing continuation ranges taken by a tail
    while (shared + 1 < sequence.size()) {
      const ByteRange& r = sequence[sequence.size() - 1 - shared];
      if (r.first != kAnyContinuation.first || r.last != kAnyContinuation.last) break;
      ++shared;
    }
    RS_ASSIGN_OR_RETURN(const int32_t after, tail(shared));
    RS_ASSIGN_OR_RETURN(int32_t at, New());
    Link(start, at);
    const size_t own = sequence.size() - shared;
    for (size_t i = 0; i < own; ++i) {
      int32_t next = after;
      if (i + 1 < own) {
        RS_ASSIGN_OR_RETURN(next, New());
      }
      NfaState& state = states_[static_cast<size_t>(at)];
      state.range = sequence[i];
      state.on_byte = next;
      at = next;
    }
  }
  return Fragment{.start = start, .end = end};
}

// x{min,max}: min copies, then x* or (max - min) nested optional copies.
absl::StatusOr<Fragment> NfaBuilder::EmitRepeat(const RegexNode& node) {
  const RegexNode& child = node.children[0];
  RS_ASSIGN_OR_RETURN(const int32_t start, New());
  int32_t end = start;
  for (int32_t i = 0; i < node.min; ++i) {
    RS_ASSIGN_OR_RETURN(const Fragment copy, Emit(child));
    Link(end, copy.start);
    end = copy.end;
  }
  if (node.max == RegexNode::kUnbounded) {
    RS_ASSIGN_OR_RETURN(const int32_t loop, New());
    RS_ASSIGN_OR_RETURN(const Fragment copy, Emit(child));
    Link(end, loop);
    Link(loop, copy.start);
    Link(copy.end, loop);
    return Fragment{.start = start, .end = loop};
  }
  if (node.max == node.min) return Fragment{.start = start, .end = end};
  RS_ASSIGN_OR_RETURN(const int32_t done, New());
  for (int32_t i = node.min; i < node.max; ++i) {
    RS_ASSIGN_OR_RETURN(const Fragment copy, Emit(child));
    Link(end, done);
    Link(end, copy.start);
    end = copy.end;
  }
  Link(end, done);
  return Fragment{.start = start, .end = done};
}

}  // namespace regex_internal

using regex_internal::NfaBuilder;
using regex_internal::NfaState;
using regex_internal::TooComplex;

// Subset construction over byte classes, then the pruning of states that cannot reach a
// match.
class DfaBuilder {
 public:
  DfaBuilder(std::vector<NfaState>& nfa, int32_t match, const std::bitset<256>& allowed,
             int64_t max_work)
      : nfa_(nfa), match_(match), allowed_(allowed), max_work_(max_work), seen_(nfa.size(), 0) {}

  absl::StatusOr<std::shared_ptr<const RegexDfa>> Build(int32_t nfa_start);
  int64_t work() const { return work_; }  // what Build spent

 private:
  // The NFA states with byte or call edges reachable from `roots` by epsilon edges, sorted, and -1
  // at the end when the match state is reachable too: the key of a DFA state.
  std::vector<int32_t> Closure(const std::vector<int32_t>& roots);
  void ComputeClasses(RegexDfa& dfa) const;
  absl::StatusOr<int32_t> StateOf(std::vector<int32_t> key);
  // The next DFA state's call edges: one per rule, to the closure of what follows its calls.
  absl::Status AddCalls(RegexDfa& dfa, std::vector<std::pair<int32_t, int32_t>>& calls);
  static absl::Status Prune(RegexDfa& dfa);

  std::vector<NfaState>& nfa_;
  int32_t match_;
  std::bitset<256> allowed_;
  int64_t max_work_;
  std::vector<uint32_t> seen_;  // Closure's visit marks, by generation
  uint32_t generation_ = 0;
  int64_t work_ = 0;
  absl::flat_hash_map<std::vector<int32_t>, int32_t> ids_;
  std::vector<std::vector<int32_t>> keys_;  // by DFA state
};

std::vector<int32_t> DfaBuilder::Closure(const std::vector<int32_t>& roots) {
  ++generation_;
  std::vector<int32_t> key;
  bool accepting = false;
  std::vector<int32_t> stack;
  for (const int32_t root : roots) {
    if (seen_[static_cast<size_t>(root)] == generation_) continue;  // two edges into one state
    seen_[static_cast<size_t>(root)] = generation_;
    stack.push_back(root);
  }
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    ++work_;
    const NfaState& state = nfa_[static_cast<size_t>(s)];
    if (s == match_) accepting = true;
    if (state.range.first <= state.range.last || state.call >= 0) key.push_back(s);
    for (const int32_t next : state.epsilon) {
      if (seen_[static_cast<size_t>(next)] == generation_) continue;
      seen_[static_cast<size_t>(next)] = generation_;
      stack.push_back(next);
    }
  }
  std::sort(key.begin(), key.end());
  if (accepting) key.push_back(-1);
  return key;
}

void DfaBuilder::ComputeClasses(RegexDfa& dfa) const {
  std::bitset<257> starts;  // bytes where a class begins
  starts.set(0);
  for (const NfaState& state : nfa_) {
    if (state.range.first > state.range.last) continue;
    starts.set(state.range.first);
    starts.set(state.range.last + 1U);
  }
  for (size_t b = 1; b < 256; ++b) {
    if (allowed_[b] != allowed_[b - 1]) starts.set(b);
  }
  int cls = -1;
  for (size_t b = 0; b < 256; ++b) {
    if (starts[b]) ++cls;
    dfa.class_of_[b] = static_cast<uint8_t>(cls);
  }
  dfa.num_classes_ = static_cast<size_t>(cls) + 1;
}

absl::StatusOr<int32_t> DfaBuilder::StateOf(std::vector<int32_t> key) {
  const auto it = ids_.find(key);
  if (it != ids_.end()) return it->second;
  if (keys_.size() >= static_cast<size_t>(RegexDfa::kMaxStates)) {
    return TooComplex(absl::StrCat("automaton over ", RegexDfa::kMaxStates, " states"));
  }
  const auto id = static_cast<int32_t>(keys_.size());
  ids_.emplace(key, id);
  keys_.push_back(std::move(key));
  return id;
}

absl::StatusOr<std::shared_ptr<const RegexDfa>> DfaBuilder::Build(int32_t nfa_start) {
  auto dfa = std::make_shared<RegexDfa>();
  ComputeClasses(*dfa);
  const size_t classes = dfa->num_classes_;
  std::array<uint8_t, 256> first_byte{};  // of each class
  for (size_t b = 256; b-- > 0;) first_byte[dfa->class_of_[b]] = static_cast<uint8_t>(b);
  RS_RETURN_IF_ERROR(StateOf(Closure({nfa_start})).status());  // RegexDfa::kStart
  std::vector<std::vector<int32_t>> targets(classes);
  std::vector<std::pair<int32_t, int32_t>> calls;  // (rule, NFA state after it)
  for (size_t s = 0; s < keys_.size(); ++s) {      // StateOf appends the states to visit
    for (std::vector<int32_t>& t : targets) t.clear();
    calls.clear();
    const std::vector<int32_t>& key = keys_[s];  // valid until the next StateOf
    dfa->accepting_.push_back(!key.empty() && key.back() < 0 ? 1 : 0);
    for (const int32_t n : key) {
      if (n < 0) continue;  // the accepting mark
      const NfaState& state = nfa_[static_cast<size_t>(n)];
      if (state.call >= 0) {
        calls.emplace_back(state.call, state.on_byte);
        continue;
      }
      for (size_t c = dfa->class_of_[state.range.first]; c <= dfa->class_of_[state.range.last];
           ++c) {
        targets[c].push_back(state.on_byte);
        ++work_;
      }
    }
    for (size_t c = 0; c < classes; ++c) {
      int32_t next = RegexDfa::kDead;
      if (!targets[c].empty() && allowed_[first_byte[c]]) {
        RS_ASSIGN_OR_RETURN(next, StateOf(Closure(targets[c])));
      }
      dfa->next_.push_back(next);
    }
    RS_RETURN_IF_ERROR(AddCalls(*dfa, calls));
    if (work_ > max_work_) return TooComplex("the automaton takes too long to build");
  }
  RS_RETURN_IF_ERROR(Prune(*dfa));
  return dfa;
}

absl::Status DfaBuilder::AddCalls(RegexDfa& dfa, std::vector<std::pair<int32_t, int32_t>>& calls) {
  if (dfa.call_begin_.empty()) dfa.call_begin_.push_back(0);
  std::sort(calls.begin(), calls.end());
  std::vector<int32_t> after;
  for (size_t i = 0; i < calls.size();) {
    after.clear();
    const int32_t rule = calls[i].first;
    for (; i < calls.size() && calls[i].first == rule; ++i) after.push_back(calls[i].second);
    RS_ASSIGN_OR_RETURN(const int32_t next, StateOf(Closure(after)));
    dfa.calls_.push_back(RegexDfa::Call{.rule = rule, .next = next});
  }
  dfa.call_begin_.push_back(static_cast<int32_t>(dfa.calls_.size()));
  return absl::OkStatus();
}

// Removes the edges (bytes and calls) into states from which no accepting state can be
// reached.
absl::Status DfaBuilder::Prune(RegexDfa& dfa) {
  const size_t n = dfa.accepting_.size();
  const size_t classes = dfa.num_classes_;
  std::vector<std::vector<int32_t>> into(n);
  for (size_t s = 0; s < n; ++s) {
    for (size_t c = 0; c < classes; ++c) {
      const int32_t t = dfa.next_[s * classes + c];
      if (t != RegexDfa::kDead) into[static_cast<size_t>(t)].push_back(static_cast<int32_t>(s));
    }
    for (const RegexDfa::Call& call : dfa.Calls(static_cast<int32_t>(s))) {
      into[static_cast<size_t>(call.next)].push_back(static_cast<int32_t>(s));
    }
  }
  std::vector<uint8_t> live(dfa.accepting_);
  std::vector<int32_t> stack;
  for (size_t s = 0; s < n; ++s) {
    if (live[s] != 0) stack.push_back(static_cast<int32_t>(s));
  }
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    for (const int32_t from : into[static_cast<size_t>(s)]) {
      if (live[static_cast<size_t>(from)] != 0) continue;
      live[static_cast<size_t>(from)] = 1;
      stack.push_back(from);
    }
  }
  if (live[RegexDfa::kStart] == 0) {
    return absl::InvalidArgumentError("regex: matches no text");
  }
  dfa.continues_.assign(n, 0);
  for (size_t s = 0; s < n; ++s) {
    for (size_t c = 0; c < classes; ++c) {
      int32_t& t = dfa.next_[s * classes + c];
      if (t != RegexDfa::kDead && live[static_cast<size_t>(t)] == 0) t = RegexDfa::kDead;
      if (t != RegexDfa::kDead) dfa.continues_[s] = 1;
    }
  }
  if (dfa.calls_.empty()) {
    dfa.call_begin_.clear();  // Calls() answers from calls_ alone
    return absl::OkStatus();
  }
  std::vector<RegexDfa::Call> kept;
  std::vector<int32_t> begin = {0};
  for (size_t s = 0; s < n; ++s) {
    for (const RegexDfa::Call& call : dfa.Calls(static_cast<int32_t>(s))) {
      if (live[static_cast<size_t>(call.next)] != 0) kept.push_back(call);
    }
    begin.push_back(static_cast<int32_t>(kept.size()));
  }
  dfa.calls_ = std::move(kept);
  dfa.call_begin_ = std::move(begin);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const RegexDfa>> RegexDfa::Compile(std::string_view pattern,
                                                                  const std::bitset<256>& allowed) {
  if (pattern.size() > kMaxPatternBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("regex: ", pattern.size(), " bytes is over the limit of ", kMaxPatternBytes));
  }
  RS_ASSIGN_OR_RETURN(const RegexNode tree, ParseRegex(pattern));
  return CompileTree(tree, allowed);
}

absl::StatusOr<std::shared_ptr<const RegexDfa>> RegexDfa::CompileTree(
    const RegexNode& tree, const std::bitset<256>& allowed, int64_t* work_left) {
  NfaBuilder nfa;
  RS_ASSIGN_OR_RETURN(const int32_t start, nfa.Build(tree));
  DfaBuilder builder(nfa.states(), nfa.match(), allowed,
                     work_left != nullptr ? std::min(*work_left, kMaxWork) : kMaxWork);
  auto dfa = builder.Build(start);
  if (work_left != nullptr) *work_left -= builder.work();
  return dfa;
}

std::bitset<256> RegexDfa::FirstBytes() const {
  std::bitset<256> bytes;
  for (size_t b = 0; b < 256; ++b) {
    if (Next(kStart, static_cast<uint8_t>(b)) != kDead) bytes.set(b);
  }
  return bytes;
}

std::string EscapeRegexLiteral(std::string_view text) {
  constexpr std::string_view kSyntax = "\\^$.|?*+()[]{}/-";
  std::string out;
  out.reserve(text.size() * 2);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      constexpr std::string_view kHex = "0123456789ABCDEF";
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    } else {
      if (kSyntax.find(c) != std::string_view::npos) out.push_back('\\');
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<std::string> ChoicePattern(std::span<const std::string> choices) {
  if (choices.empty() || choices.size() > static_cast<size_t>(kMaxChoices)) {
    return absl::InvalidArgumentError(
        absl::StrCat("must hold 1 to ", kMaxChoices, " strings (got ", choices.size(), ")"));
  }
  std::string pattern = "(?:";
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].empty() || choices[i].size() > kMaxChoiceBytes) {
      return absl::InvalidArgumentError(absl::StrCat("choice ", i, " has ", choices[i].size(),
                                                     " bytes; each needs 1 to ", kMaxChoiceBytes));
    }
    if (i > 0) pattern += '|';
    pattern += EscapeRegexLiteral(choices[i]);
  }
  pattern += ')';
  return pattern;
}

}  // namespace ringserve::grammar
