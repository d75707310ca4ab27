// SseParser on event streams: the field rules of WHATWG HTML section 9.2.6, the three line
// ends, and streams split at every byte as a socket may deliver them.
#include "common/http/sse_parser.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace ringserve::http {
namespace {

std::vector<SseEvent> ParseWhole(absl::string_view bytes) {
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed(bytes, &events);
  return events;
}

std::vector<SseEvent> ParsePieces(const std::vector<absl::string_view>& pieces) {
  SseParser parser;
  std::vector<SseEvent> events;
  for (const absl::string_view piece : pieces) parser.Feed(piece, &events);
  return events;
}

// Events compared field by field, so that a failure shows which one differs.
std::string Describe(const std::vector<SseEvent>& events) {
  std::string out;
  for (const SseEvent& e : events) {
    absl::StrAppend(&out, "{event=\"", e.event, "\" data=\"", e.data, "\" id=\"", e.id, "\"}\n");
  }
  return out;
}

std::vector<SseEvent> Events(std::vector<SseEvent> events) { return events; }

TEST(SseParserTest, OneDataEvent) {
  SseParser parser;
  std::vector<SseEvent> events;
  EXPECT_FALSE(parser.has_partial());
  parser.Feed("data: x\n\n", &events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "");
  EXPECT_EQ(events[0].data, "x");
  EXPECT_EQ(events[0].id, "");
  EXPECT_FALSE(parser.has_partial());
  // Events are appended to what the vector already holds.
  parser.Feed("data: y\n\n", &events);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].data, "y");
}

TEST(SseParserTest, CrlfLfAndLoneCrEndLines) {
  const std::string expected = Describe(Events({{"", "a\nb", ""}, {"", "c", ""}}));
  EXPECT_EQ(Describe(ParseWhole("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n")), expected);
  EXPECT_EQ(Describe(ParseWhole("data: a\ndata: b\n\ndata: c\n\n")), expected);
  EXPECT_EQ(Describe(ParseWhole("data: a\rdata: b\r\rdata: c\r\r")), expected);
  EXPECT_EQ(Describe(ParseWhole("data: a\rdata: b\n\r\ndata: c\r\r\n")), expected);
  // LF CR is two line ends, not one.
  EXPECT_EQ(Describe(ParseWhole("data: a\n\rdata: b\n\n")),
            Describe(Events({{"", "a", ""}, {"", "b", ""}})));
}

TEST(SseParserTest, CrAtTheEndOfOneFeedThenLfIsOneLineEnd) {
  // Were the CR and LF two line ends, the LF would be a blank line and dispatch "a" alone.
  EXPECT_EQ(Describe(ParsePieces({"data: a\r", "\ndata: b\r", "\n\r", "\n"})),
            Describe(Events({{"", "a\nb", ""}})));
  // An empty Feed between them changes nothing.
  EXPECT_EQ(Describe(ParsePieces({"data: a\r", "", "\ndata: b\r\n\r\n"})),
            Describe(Events({{"", "a\nb", ""}})));
  // A lone CR at the end of a Feed still ends its line at once.
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed("data: a\r\r", &events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(parser.has_partial());
  parser.Feed("data: b\n\n", &events);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].data, "b");
}

TEST(SseParserTest, MultiLineDataIsJoinedWithLf) {
  const std::vector<SseEvent> events =
      ParseWhole("data: {\"a\":\ndata:  1}\ndata\ndata: \ndata: end\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "{\"a\":\n 1}\n\n\nend");
}

TEST(SseParserTest, CommentsAreIgnored) {
  EXPECT_TRUE(ParseWhole(": keep-alive\n\n").empty());
  EXPECT_TRUE(ParseWhole(":\n\n:\r\n\r\n").empty());
  EXPECT_EQ(Describe(ParseWhole(":comment\ndata: x\n: between\ndata: y\n\n")),
            Describe(Events({{"", "x\ny", ""}})));
}

TEST(SseParserTest, AFieldWithoutColonHasAnEmptyValue) {
  EXPECT_EQ(Describe(ParseWhole("data\n\n")), Describe(Events({{"", "", ""}})));
  EXPECT_EQ(Describe(ParseWhole("data\ndata\n\n")), Describe(Events({{"", "\n", ""}})));
  EXPECT_EQ(Describe(ParseWhole("event\ndata: x\n\n")), Describe(Events({{"", "x", ""}})));
  EXPECT_EQ(Describe(ParseWhole("id: 7\ndata: x\n\nid\ndata: y\n\n")),
            Describe(Events({{"", "x", "7"}, {"", "y", ""}})));
}

TEST(SseParserTest, OnlyOneLeadingSpaceOfAValueIsRemoved) {
  EXPECT_EQ(ParseWhole("data:x\n\n").at(0).data, "x");
  EXPECT_EQ(ParseWhole("data: x\n\n").at(0).data, "x");
  EXPECT_EQ(ParseWhole("data:  x\n\n").at(0).data, " x");
  EXPECT_EQ(ParseWhole("data:\tx\n\n").at(0).data, "\tx");
  EXPECT_EQ(ParseWhole("data: x \n\n").at(0).data, "x ");
  EXPECT_EQ(ParseWhole("data: a: b\n\n").at(0).data, "a: b");  // only the first colon splits
  EXPECT_EQ(ParseWhole("event:  ping\ndata\n\n").at(0).event, " ping");
}

TEST(SseParserTest, EventAndIdFields) {
  const std::vector<SseEvent> events = ParseWhole(
      "event: add\nid: 1\ndata: a\n\n"
      "data: b\n\n"  // the type is reset, the id stays
      "id: 2\nevent: remove\nevent: update\ndata: c\nretry: 1000\nfoo: bar\n\n"
      "id\ndata: d\n\n");
  EXPECT_EQ(
      Describe(events),
      Describe(Events({{"add", "a", "1"}, {"", "b", "1"}, {"update", "c", "2"}, {"", "d", ""}})));
}

TEST(SseParserTest, AnIdWithNulIsIgnored) {
  constexpr char kBytes[] = "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n";
  EXPECT_EQ(Describe(ParseWhole(absl::string_view(kBytes, sizeof(kBytes) - 1))),
            Describe(Events({{"", "a", "1"}, {"", "b", "1"}})));
}

TEST(SseParserTest, FieldNamesAreCaseSensitiveAndUnknownOnesIgnored) {
  EXPECT_TRUE(ParseWhole("Data: x\n\nDATA: y\n\n data: z\n\nretry: 5\n\n").empty());
  EXPECT_EQ(Describe(ParseWhole("Event: e\nunknown\ndata: x\n\n")),
            Describe(Events({{"", "x", ""}})));
}

TEST(SseParserTest, AnEventWithoutDataIsNotDispatchedAndForgetsItsType) {
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed("event: ping\n", &events);
  EXPECT_TRUE(parser.has_partial());
  parser.Feed("\n", &events);
  EXPECT_TRUE(events.empty());
  EXPECT_FALSE(parser.has_partial());
  parser.Feed("data: x\n\n", &events);
  EXPECT_EQ(Describe(events), Describe(Events({{"", "x", ""}})));
}

TEST(SseParserTest, TheStreamsLeadingBomIsDropped) {
  const std::string bom = "\xEF\xBB\xBF";
  const std::string expected = Describe(Events({{"", "x", ""}}));
  EXPECT_EQ(Describe(ParseWhole(bom + "data: x\n\n")), expected);
  EXPECT_EQ(Describe(ParsePieces({"\xEF", "\xBB", "\xBF", "data: x\n\n"})), expected);
  const std::string bom_end_and_da = bom.substr(2) + "da";
  EXPECT_EQ(Describe(ParsePieces({bom.substr(0, 2), bom_end_and_da, "ta: x\n\n"})), expected);
  // Only the first: a second BOM, at the start of the stream or of a later line, is part of the
  // field name, which is then unknown.
  EXPECT_TRUE(ParseWhole(bom + bom + "data: x\n\n").empty());
  EXPECT_EQ(Describe(ParseWhole("data: x\n\n" + bom + "data: y\n\n")), expected);
  // Bytes that start like a BOM but are not one stay in the line.
  EXPECT_TRUE(ParseWhole(bom.substr(0, 2) + "data: x\n\n").empty());
  // Streams shorter than a BOM, and ones starting with line ends, read as usual.
  EXPECT_EQ(Describe(ParsePieces({"d", "a", "ta: x\n\n"})), expected);
  EXPECT_EQ(Describe(ParsePieces({"\n", "\r", "\ndata: x\n\n"})), expected);
  EXPECT_EQ(Describe(ParsePieces({"\r", "\n", "data: x\r", "\n\r\n"})), expected);
}

TEST(SseParserTest, HasPartialTellsAStreamThatEndedMidEvent) {
  SseParser parser;
  std::vector<SseEvent> events;
  const auto feed = [&](absl::string_view bytes) {
    parser.Feed(bytes, &events);
    return parser.has_partial();
  };
  EXPECT_TRUE(feed("\xEF"));          // could still be a BOM
  EXPECT_FALSE(feed("\xBB\xBF"));     // it was
  EXPECT_TRUE(feed("da"));            // an unfinished line
  EXPECT_TRUE(feed("ta: x\n"));       // an unfinished event
  EXPECT_FALSE(feed("\n"));           // dispatched
  EXPECT_TRUE(feed(": comment"));     // an unfinished line, even a comment
  EXPECT_FALSE(feed("\n"));           // a whole comment holds nothing
  EXPECT_FALSE(feed("id: 5\n"));      // the id is kept for every later event, not pending
  EXPECT_FALSE(feed("retry: 10\r"));  // a CR that a LF may yet follow holds nothing
  EXPECT_FALSE(feed("\n"));
  EXPECT_TRUE(feed("event: e\n"));
  EXPECT_FALSE(feed("\n"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
}

// What an OpenAI-compatible server streams for a chat completion.
std::string OpenAiStream(absl::string_view line_end) {
  std::string stream;
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&stream,
                    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
                    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok ",
                    i, ": caf\xC3\xA9 \\n\"},\"finish_reason\":null}]}", line_end, line_end);
    if (i == 3) absl::StrAppend(&stream, ": keep-alive", line_end, line_end);
  }
  absl::StrAppend(&stream, "data: [DONE]", line_end, line_end);
  return stream;
}

TEST(SseParserTest, AnOpenAiStreamGivesTheSameEventsAtEverySplit) {
  for (const absl::string_view line_end : {"\n", "\r\n", "\r"}) {
    const std::string stream = OpenAiStream(line_end);
    const std::vector<SseEvent> whole = ParseWhole(stream);
    ASSERT_EQ(whole.size(), 9u);
    EXPECT_EQ(
        whole[0].data,
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"content\":\"tok 0: caf\xC3\xA9 \\n\"},\"finish_reason\":null}]}");
    EXPECT_EQ(whole.back().data, "[DONE]");
    const std::string expected = Describe(whole);
    for (size_t split = 0; split <= stream.size(); ++split) {
      const absl::string_view s = stream;
      EXPECT_EQ(Describe(ParsePieces({s.substr(0, split), s.substr(split)})), expected) << split;
    }
    // Three pieces, the middle one of every length from every start, for splits inside CRLF
    // pairs and UTF-8 characters on both sides of a piece.
    for (size_t start = 0; start < stream.size(); start += 7) {
      for (size_t length = 0; start + length <= stream.size() && length < 12; ++length) {
        const absl::string_view s = stream;
        EXPECT_EQ(Describe(ParsePieces(
                      {s.substr(0, start), s.substr(start, length), s.substr(start + length)})),
                  expected)
            << start << "+" << length;
      }
    }
    std::vector<absl::string_view> bytes;
    for (size_t i = 0; i < stream.size(); ++i)
      bytes.push_back(absl::string_view(stream).substr(i, 1));
    EXPECT_EQ(Describe(ParsePieces(bytes)), expected);
  }
}

TEST(SseParserTest, ManySmallEventsAndALongLineByteByByte) {
  // Linear work: a quadratic re-scan would take minutes here, not milliseconds.
  std::string stream;
  constexpr int kEvents = 100000;
  for (int i = 0; i < kEvents; ++i) absl::StrAppend(&stream, "data: {\"n\":", i, "}\n\n");
  SseParser parser;
  std::vector<SseEvent> events;
  for (size_t pos = 0; pos < stream.size(); pos += 5) {
    parser.Feed(absl::string_view(stream).substr(pos, 5), &events);
  }
  ASSERT_EQ(events.size(), static_cast<size_t>(kEvents));
  EXPECT_EQ(events[12345].data, "{\"n\":12345}");
  EXPECT_FALSE(parser.has_partial());

  const std::string line = "data: " + std::string(1 << 20, 'x');
  std::vector<SseEvent> long_events;
  SseParser long_parser;
  for (const char c : line) long_parser.Feed(absl::string_view(&c, 1), &long_events);
  EXPECT_TRUE(long_events.empty());
  EXPECT_TRUE(long_parser.has_partial());
  long_parser.Feed("\n\n", &long_events);
  ASSERT_EQ(long_events.size(), 1u);
  EXPECT_EQ(long_events[0].data.size(), size_t{1} << 20);
}

}  // namespace
}  // namespace ringserve::http
