// For the tests of renderers whose Server-Sent Events are typed ("event: TYPE" then "data:
// JSON" whose "type" is TYPE too): the Responses API's and the Messages API's.
#ifndef RINGSERVE_TESTS_UNIT_ROUTER_TYPED_EVENTS_H_
#define RINGSERVE_TESTS_UNIT_ROUTER_TYPED_EVENTS_H_

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace ringserve::openai::testing {

using TypedEvent = std::pair<std::string, nlohmann::json>;

// Each event's type and data; a malformed event fails the test.
inline std::vector<TypedEvent> TypedEvents(const std::string& stream) {
  std::vector<TypedEvent> events;
  size_t at = 0;
  while (at < stream.size()) {
    const size_t end = stream.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << stream;
    if (end == std::string::npos) break;
    const std::string event = stream.substr(at, end - at);
    const size_t newline = event.find('\n');
    EXPECT_EQ(event.rfind("event: ", 0), 0U) << event;
    EXPECT_EQ(event.compare(newline + 1, 6, "data: "), 0) << event;
    const std::string type = event.substr(7, newline - 7);
    nlohmann::json data = nlohmann::json::parse(event.substr(newline + 7));
    EXPECT_EQ(data["type"], type);
    events.emplace_back(type, std::move(data));
    at = end + 2;
  }
  return events;
}

inline std::vector<std::string> TypesOf(const std::vector<TypedEvent>& events) {
  std::vector<std::string> types;
  for (const auto& [type, data] : events) types.push_back(type);
  return types;
}

}  // namespace ringserve::openai::testing

#endif  // RINGSERVE_TESTS_UNIT_ROUTER_TYPED_EVENTS_H_
