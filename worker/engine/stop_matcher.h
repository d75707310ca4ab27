// Stop strings over streamed text. A stop string may span several tokens, so text that
// could be the start of one is held back until it either completes the match (generation
// stops; everything after the match, and unless asked the match itself, is never emitted)
// or cannot (it is released).
#ifndef RINGSERVE_WORKER_ENGINE_STOP_MATCHER_H_
#define RINGSERVE_WORKER_ENGINE_STOP_MATCHER_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringserve::engine {

class StopMatcher {
 public:
  // Empty stop strings are ignored. `include_match`: the matched string ends the emitted
  // text.
  explicit StopMatcher(std::vector<std::string> stops, bool include_match = false);

  // Adds `text` and returns what may be emitted now. After a match, matched() names the
  // stop string and later calls return nothing.
  std::string Push(std::string_view text);
  // The held-back text, released at the end of generation (when no stop matched).
  std::string Flush();
  const std::optional<std::string>& matched() const { return matched_; }

 private:
  // Length of the longest suffix of held_ that is a proper prefix of some stop string.
  size_t PartialMatchLength() const;

  std::vector<std::string> stops_;
  bool include_match_ = false;
  std::string held_;
  std::optional<std::string> matched_;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_STOP_MATCHER_H_
