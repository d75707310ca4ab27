// One job's structured-output constraint over tokens: which tokens may come next, given the
// text generated so far, and the text's progress as tokens are picked.
//
// The sampler masks a row's logits before its chain (Mask), then records the pick
// (Accept). End-of-sequence tokens are allowed once the value is complete; once nothing may
// follow it (finished()), the generator ends the job. A reply spends most of its tokens in
// a few recurring states (inside a string, between an array's elements), so the masks of
// the last kCachedMasks states (by Matcher::MaskKey) are kept and a recurring state's
// mask costs no trie walk.
//
// A constraint with a trigger binds lazily: it masks nothing until the trigger's text
// appears in the generated text (anywhere, or, `at_start`, after nothing but whitespace), or
// its token is picked,
// then holds the text from the trigger on (the grammar's text starts with it) until that text
// is finished, and lets go again until the next appearance (or, Trigger::once, ends the
// reply): a tool call's syntax in a reply that may also be free text.
//
// Ownership and threads: owned by the job's sampler and used by one thread at a time; the
// trie is shared and must outlive it.
#ifndef RINGSERVE_WORKER_GRAMMAR_TOKEN_CONSTRAINT_H_
#define RINGSERVE_WORKER_GRAMMAR_TOKEN_CONSTRAINT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "worker/grammar/matcher.h"
#include "worker/grammar/token_trie.h"

namespace ringserve::grammar {

struct Trigger {
  // Binds where this text appears; empty with `token`.
  std::string text;
  // With `token`: as the reply's first token only; with `text`: after nothing but whitespace.
  bool at_start = false;
  // Watching starts once this text has appeared (a thinking model's "</think>": a call
  // written inside the thought is not bound); empty: from the reply's start.
  std::string after{};
  // The first bound stretch ends the reply (finished() once it is over): at most one tool
  // call a reply.
  bool once{};
  // Binds when this token is picked instead: a control token with no text (Mistral's
  // [TOOL_CALLS]), the grammar's text being what follows it. `after` does not apply.
  std::optional<int32_t> token{};
};

class TokenConstraint {
 public:
  static constexpr int kCachedMasks = 4;

  // end_ids: the tokens that end generation (allowed once the value is complete).
  TokenConstraint(Matcher matcher, const TokenTrie* trie, std::vector<int32_t> end_ids);
  // Binds only after `trigger` (above); `matcher` is where each bound stretch starts.
  TokenConstraint(Matcher matcher, const TokenTrie* trie, std::vector<int32_t> end_ids,
                  Trigger trigger);

  // Sets every logit whose token may not come next to -inf. When no token can spell a
  // continuation (a vocabulary that lacks a byte the grammar needs next) the end tokens
  // are allowed instead, so the job ends rather than break the format; the row keeps its
  // logits only when the model has no end tokens either.
  void Mask(std::span<float> logits);
  // Records the picked token (its bytes advance the text; an end token leaves it as is).
  // A token Mask refused is ignored.
  void Accept(int32_t id);

  // The value is complete and nothing may follow it. With a trigger: only after a stretch
  // of Trigger::once (otherwise the reply goes on after each bound stretch).
  bool finished() const { return trigger_.has_value() ? done_ : matcher_.IsFinished(); }
  // Masks apply now: always without a trigger; with one, from the trigger to the end of
  // the grammar's text.
  bool active() const { return active_; }
  const Matcher& matcher() const { return matcher_; }
  // Masks computed by a trie walk, and masks found cached.
  int64_t num_walks() const { return num_walks_; }
  int64_t num_cache_hits() const { return num_cache_hits_; }

 private:
  struct CachedMask {
    std::optional<Matcher> state;  // its MaskKey
    TokenBits allowed;             // the end tokens included where the state allows them
    int32_t num_allowed = 0;
    int64_t last_used = 0;
  };

  // The mask of the current state, from the cache or a walk (then cached).
  const CachedMask& MaskOfState();
  // Looks for the trigger in the text so far and the token's `bytes`.
  void Watch(std::string_view bytes);
  // Looks for the trigger's token (Trigger::token).
  void WatchToken(int32_t id);
  void EndStretch();

  Matcher matcher_;
  std::optional<Matcher> start_;  // with a trigger: the state each bound stretch starts in
  std::optional<Trigger> trigger_;
  bool active_ = true;
  bool watching_ = false;    // looking for the trigger
  bool past_after_ = false;  // Trigger::after has appeared (or is empty)
  bool done_ = false;        // the stretch of a Trigger::once is over
  std::string seen_;         // the text's last bytes, where the trigger may be starting
  const TokenTrie* trie_;
  std::vector<int32_t> end_ids_;
  std::array<CachedMask, kCachedMasks> cache_;
  std::vector<Matcher> scratch_;  // the trie walk's matchers, reused
  int64_t num_walks_ = 0;
  int64_t num_cache_hits_ = 0;
};

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_TOKEN_CONSTRAINT_H_
