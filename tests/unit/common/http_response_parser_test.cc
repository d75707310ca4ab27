// HttpResponseParser on byte streams: responses whole, split at every byte, pipelined, streamed,
// ended by the close, and the malformed ones a client must refuse (RFC 9112).
#include "common/http/http_response_parser.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace ringserve::http {
namespace {

using State = HttpResponseParser::State;

// Feeds all of `bytes` at once into `parser`; a complete response must use all of them.
std::string FeedWhole(HttpResponseParser& parser, absl::string_view bytes) {
  std::string body;
  const size_t used = parser.Feed(bytes, &body);
  if (parser.state() == State::kComplete) {
    EXPECT_EQ(used, bytes.size()) << bytes;
  }
  return body;
}

// Feeds `bytes` in two pieces split at `split`, and checks that nothing is left over.
std::string FeedSplit(HttpResponseParser& parser, absl::string_view bytes, size_t split) {
  std::string body;
  size_t used = parser.Feed(bytes.substr(0, split), &body);
  EXPECT_EQ(used, split);
  used += parser.Feed(bytes.substr(split), &body);
  EXPECT_EQ(used, bytes.size()) << split;
  return body;
}

// Feeds `bytes` one byte at a time.
std::string FeedByteByByte(HttpResponseParser& parser, absl::string_view bytes) {
  std::string body;
  for (size_t i = 0; i < bytes.size(); ++i) {
    EXPECT_EQ(parser.state(), State::kIncomplete) << i;
    EXPECT_EQ(parser.Feed(bytes.substr(i, 1), &body), 1u) << i;
  }
  return body;
}

std::string ErrorMessage(absl::string_view bytes, size_t max_head_bytes = 64 << 10) {
  HttpResponseParser parser(max_head_bytes);
  FeedWhole(parser, bytes);
  EXPECT_EQ(parser.state(), State::kError) << bytes;
  EXPECT_FALSE(parser.keep_alive());
  return parser.error_message();
}

TEST(HttpResponseParserTest, ParsesAContentLengthBody) {
  HttpResponseParser parser;
  const std::string bytes =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\nhello world";
  EXPECT_EQ(FeedWhole(parser, bytes), "hello world");
  ASSERT_EQ(parser.state(), State::kComplete) << parser.error_message();
  EXPECT_TRUE(parser.started());
  EXPECT_TRUE(parser.head_complete());
  EXPECT_TRUE(parser.keep_alive());
  const HttpResponseHead& head = parser.head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.minor_version, 1);
  EXPECT_EQ(head.reason, "OK");
  ASSERT_EQ(head.headers.size(), 2u);
  EXPECT_EQ(head.headers[0].first, "content-type");
  EXPECT_EQ(head.headers[0].second, "application/json");
  // Nothing past the end of the response, and FeedEof changes nothing now.
  std::string more;
  EXPECT_EQ(parser.Feed("HTTP/1.1", &more), 0u);
  EXPECT_EQ(more, "");
  parser.FeedEof();
  EXPECT_EQ(parser.state(), State::kComplete);
}

TEST(HttpResponseParserTest, ContentLengthBodyAtEverySplitAndByteByByte) {
  const std::string head = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n";
  const std::string bytes = head + "not found";
  for (size_t split = 0; split <= bytes.size(); ++split) {
    HttpResponseParser parser;
    EXPECT_EQ(FeedSplit(parser, bytes, split), "not found") << split;
    ASSERT_EQ(parser.state(), State::kComplete) << split << ": " << parser.error_message();
    EXPECT_EQ(parser.head().status, 404);
    EXPECT_EQ(parser.head().reason, "Not Found");
  }
  HttpResponseParser parser;
  EXPECT_FALSE(parser.started());
  std::string body;
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_EQ(parser.state(), State::kIncomplete) << i;
    ASSERT_EQ(parser.Feed(absl::string_view(bytes).substr(i, 1), &body), 1u) << i;
    EXPECT_TRUE(parser.started());
    EXPECT_EQ(parser.head_complete(), i + 1 >= head.size()) << i;
    // The body is handed out as it arrives, not when it is whole.
    EXPECT_EQ(body.size(), i + 1 >= head.size() ? i + 1 - head.size() : 0) << i;
  }
  EXPECT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(body, "not found");
}

TEST(HttpResponseParserTest, ChunkedBodyWithExtensionsAndTrailersAtEverySplit) {
  const std::string bytes =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n6 ; ext=\"q\"\r\n world\r\nA\r\n0123456789\r\n"
      "0;last\r\nX-Trailer: t\r\nY: u\r\n\r\n";
  for (size_t split = 0; split <= bytes.size(); ++split) {
    HttpResponseParser parser;
    EXPECT_EQ(FeedSplit(parser, bytes, split), "hello world0123456789") << split;
    ASSERT_EQ(parser.state(), State::kComplete) << split << ": " << parser.error_message();
    EXPECT_TRUE(parser.keep_alive());
    EXPECT_EQ(parser.head().Header("x-trailer"), nullptr);  // trailers are dropped
  }
  HttpResponseParser parser;
  EXPECT_EQ(FeedByteByByte(parser, bytes), "hello world0123456789");
  EXPECT_EQ(parser.state(), State::kComplete) << parser.error_message();
}

TEST(HttpResponseParserTest, ChunkedBodyWithLowerAndUpperHexAndLeadingZeros) {
  HttpResponseParser parser;
  const std::string data(0x1aF, 'x');
  const std::string bytes =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n001aF\r\n" + data + "\r\n000\r\n\r\n";
  EXPECT_EQ(FeedWhole(parser, bytes), data);
  EXPECT_EQ(parser.state(), State::kComplete) << parser.error_message();
}

TEST(HttpResponseParserTest, StreamedEventStreamIsHandedOutChunkByChunk) {
  // What an OpenAI-compatible server sends for "stream": true, one chunk per event.
  const std::vector<std::string> events = {
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
      ": keep-alive\n\n",
      "data: [DONE]\n\n",
  };
  HttpResponseParser parser;
  std::string body;
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(parser.Feed(head, &body), head.size());
  EXPECT_TRUE(parser.head_complete());
  ASSERT_NE(parser.head().Header("content-type"), nullptr);
  EXPECT_EQ(*parser.head().Header("content-type"), "text/event-stream");
  std::string expected;
  for (const std::string& event : events) {
    const std::string chunk = absl::StrCat(absl::Hex(event.size()), "\r\n", event, "\r\n");
    EXPECT_EQ(parser.Feed(chunk, &body), chunk.size());
    expected += event;
    EXPECT_EQ(body, expected);
    EXPECT_EQ(parser.state(), State::kIncomplete);
  }
  EXPECT_EQ(parser.Feed("0\r\n\r\n", &body), 5u);
  EXPECT_EQ(parser.state(), State::kComplete);
  EXPECT_TRUE(parser.keep_alive());
  EXPECT_EQ(body, expected);
}

TEST(HttpResponseParserTest, CloseDelimitedBodyEndsAtEof) {
  HttpResponseParser parser;
  std::string body;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
  EXPECT_EQ(parser.Feed(head + "data: a\n\n", &body), head.size() + 9);
  EXPECT_EQ(parser.Feed("data: b\n\n", &body), 9u);
  EXPECT_EQ(parser.state(), State::kIncomplete);
  EXPECT_TRUE(parser.head_complete());
  EXPECT_FALSE(parser.keep_alive());  // only the close can end this body
  parser.FeedEof();
  ASSERT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(body, "data: a\n\ndata: b\n\n");
  EXPECT_FALSE(parser.keep_alive());
  EXPECT_EQ(parser.Feed("x", &body), 0u);

  // An HTTP/1.0 response, even one asking for keep-alive, and an empty body.
  HttpResponseParser http10;
  FeedWhole(http10, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(http10.state(), State::kIncomplete);
  http10.FeedEof();
  EXPECT_EQ(http10.state(), State::kComplete);
  EXPECT_EQ(http10.head().minor_version, 0);
  EXPECT_FALSE(http10.keep_alive());
}

TEST(HttpResponseParserTest, EofBeforeTheEndIsAnError) {
  const auto eof_error = [](absl::string_view bytes) {
    HttpResponseParser parser;
    FeedWhole(parser, bytes);
    EXPECT_EQ(parser.state(), State::kIncomplete) << bytes;
    parser.FeedEof();
    EXPECT_EQ(parser.state(), State::kError) << bytes;
    EXPECT_FALSE(parser.keep_alive());
    return parser.error_message();
  };
  EXPECT_EQ(eof_error(""), "connection closed before the end of the response head");
  EXPECT_EQ(eof_error("HTTP/1.1 200 OK\r\nContent-Len"),
            "connection closed before the end of the response head");
  EXPECT_EQ(eof_error("HTTP/1.1 100 Continue\r\n\r\n"),
            "connection closed before the end of the response head");
  EXPECT_EQ(eof_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
            "connection closed before the end of the body, 7 bytes short of its Content-Length");
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* rest : {"", "5", "5\r\nhel", "5\r\nhello", "5\r\nhello\r", "5\r\nhello\r\n0\r\n",
                           "0\r\nX-Trailer: 1\r\n"}) {
    EXPECT_EQ(eof_error(chunked + rest), "connection closed before the end of the chunked body")
        << rest;
  }
}

TEST(HttpResponseParserTest, StartedTellsAStaleConnectionFromAResponseCutShort) {
  HttpResponseParser parser;
  parser.FeedEof();
  EXPECT_EQ(parser.state(), State::kError);
  EXPECT_FALSE(parser.started());  // nothing arrived: the server had closed an idle connection
  parser.Reset();
  std::string body;
  parser.Feed("\r\n", &body);
  EXPECT_TRUE(parser.started());
}

TEST(HttpResponseParserTest, InterimResponsesAreSkippedAtEverySplit) {
  const std::string bytes =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok";
  for (size_t split = 0; split <= bytes.size(); ++split) {
    HttpResponseParser parser;
    EXPECT_EQ(FeedSplit(parser, bytes, split), "ok") << split;
    ASSERT_EQ(parser.state(), State::kComplete) << split << ": " << parser.error_message();
    EXPECT_EQ(parser.head().status, 200);
    EXPECT_EQ(parser.head().Header("link"), nullptr);  // the interim heads are not reported
    ASSERT_EQ(parser.head().headers.size(), 2u);
  }
  HttpResponseParser parser;
  std::string body;
  EXPECT_EQ(parser.Feed("HTTP/1.1 100 Continue\r\n\r\n", &body), 25u);
  EXPECT_EQ(parser.state(), State::kIncomplete);
  EXPECT_FALSE(parser.head_complete());
  EXPECT_TRUE(parser.started());
}

TEST(HttpResponseParserTest, SwitchingProtocolsIsAnError) {
  EXPECT_EQ(ErrorMessage("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
            "101 Switching Protocols: the connection no longer carries HTTP/1.1");
}

TEST(HttpResponseParserTest, NoBodyFor204And304AndExpectNoBody) {
  const std::string next = "HTTP/1.1 200 OK\r\n";
  for (const char* head : {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                           "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    HttpResponseParser parser;
    std::string body;
    EXPECT_EQ(parser.Feed(absl::StrCat(head, next), &body), strlen(head)) << head;
    EXPECT_EQ(parser.state(), State::kComplete) << head;
    EXPECT_EQ(body, "");
    EXPECT_TRUE(parser.keep_alive());
  }

  // The answer to HEAD carries the length the body would have had.
  HttpResponseParser parser;
  parser.ExpectNoBody();
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  std::string body;
  EXPECT_EQ(parser.Feed(head + next, &body), head.size());
  EXPECT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(*parser.head().Header("content-length"), "100");
  EXPECT_EQ(body, "");
  EXPECT_TRUE(parser.keep_alive());
  // Reset forgets ExpectNoBody: the next response has its body.
  parser.Reset();
  EXPECT_EQ(FeedWhole(parser, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"), "abc");
  EXPECT_EQ(parser.state(), State::kComplete);

  // Even without any length, a HEAD response ends with its head.
  HttpResponseParser no_length;
  no_length.ExpectNoBody();
  FeedWhole(no_length, "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(no_length.state(), State::kComplete);
  EXPECT_TRUE(no_length.keep_alive());
}

TEST(HttpResponseParserTest, PipelinedResponsesAreReadOneAtATime) {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second =
      "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n";
  const std::string third = "HTTP/1.1 204 No Content\r\n\r\n";
  const std::string bytes = first + second + third;
  HttpResponseParser parser;
  std::string body;
  size_t used = parser.Feed(bytes, &body);
  ASSERT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(used, first.size());
  EXPECT_EQ(body, "abc");
  EXPECT_EQ(parser.Feed(absl::string_view(bytes).substr(used), &body), 0u);  // until Reset

  parser.Reset();
  body.clear();
  used += parser.Feed(absl::string_view(bytes).substr(used), &body);
  ASSERT_EQ(parser.state(), State::kComplete) << parser.error_message();
  EXPECT_EQ(used, first.size() + second.size());
  EXPECT_EQ(parser.head().status, 201);
  EXPECT_EQ(body, "de");

  parser.Reset();
  body.clear();
  used += parser.Feed(absl::string_view(bytes).substr(used), &body);
  ASSERT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(used, bytes.size());
  EXPECT_EQ(parser.head().status, 204);
  EXPECT_EQ(parser.head().Header("transfer-encoding"), nullptr);  // Reset cleared the head
  EXPECT_EQ(body, "");
}

TEST(HttpResponseParserTest, KeepAliveFollowsTheVersionAndConnectionHeader) {
  const auto keep_alive = [](absl::string_view head) {
    HttpResponseParser parser;
    FeedWhole(parser, absl::StrCat(head, "Content-Length: 0\r\n\r\n"));
    EXPECT_EQ(parser.state(), State::kComplete) << head;
    return parser.keep_alive();
  };
  EXPECT_TRUE(keep_alive("HTTP/1.1 200 OK\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: close\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.0 200 OK\r\n"));
  EXPECT_TRUE(keep_alive("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n"));
  // A later HTTP/1.x is read as HTTP/1.1 (RFC 9112 section 2.3).
  EXPECT_TRUE(keep_alive("HTTP/1.2 200 OK\r\n"));

  // With Connection: close the body is still framed by its length.
  HttpResponseParser parser;
  EXPECT_EQ(
      FeedWhole(parser, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
      "ok");
  EXPECT_EQ(parser.state(), State::kComplete);
  EXPECT_FALSE(parser.keep_alive());
}

TEST(HttpResponseParserTest, TransferEncodingOverridesContentLength) {
  // Chunked wins, but the framing was ambiguous, so the connection is not reused.
  HttpResponseParser both;
  EXPECT_EQ(FeedWhole(both,
                      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n0\r\n\r\n"),
            "abc");
  EXPECT_EQ(both.state(), State::kComplete);
  EXPECT_FALSE(both.keep_alive());

  // Chunked in HTTP/1.0 is read, then the connection closes (RFC 9112 section 6.1).
  HttpResponseParser http10;
  EXPECT_EQ(FeedWhole(http10,
                      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
                      "\r\n3\r\nabc\r\n0\r\n\r\n"),
            "abc");
  EXPECT_EQ(http10.state(), State::kComplete);
  EXPECT_FALSE(http10.keep_alive());

  // Other codings are passed through: de-chunked, not decompressed.
  HttpResponseParser gzip;
  EXPECT_EQ(FeedWhole(gzip,
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
                      "\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n"),
            "\x1f\x8b\x08");
  EXPECT_EQ(gzip.state(), State::kComplete);

  // Without chunked last only the close ends the body (RFC 9112 section 6.3 item 4).
  HttpResponseParser until_close;
  EXPECT_EQ(FeedWhole(until_close,
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 2\r\n"
                      "\r\n3\r\nabc"),
            "3\r\nabc");
  EXPECT_EQ(until_close.state(), State::kIncomplete);
  until_close.FeedEof();
  EXPECT_EQ(until_close.state(), State::kComplete);
  EXPECT_FALSE(until_close.keep_alive());
}

TEST(HttpResponseParserTest, HeaderNamesAreLowerCasedAndValuesTrimmed) {
  HttpResponseParser parser;
  EXPECT_EQ(FeedWhole(parser,
                      "HTTP/1.1 200 OK\r\nCoNtEnT-LeNgTh:2\r\nX-Trace: \t spaced  value \t\r\n"
                      "X-Dup: 1\r\nx-dup: 2\r\nX-Empty:\r\nX-Utf8: caf\xc3\xa9\r\n\r\nok"),
            "ok");
  ASSERT_EQ(parser.state(), State::kComplete) << parser.error_message();
  const HttpResponseHead& head = parser.head();
  ASSERT_EQ(head.headers.size(), 6u);
  EXPECT_EQ(head.headers[0].first, "content-length");
  EXPECT_EQ(head.headers[1].first, "x-trace");
  EXPECT_EQ(head.headers[1].second, "spaced  value");
  EXPECT_EQ(*head.Header("x-dup"), "1");  // the first of repeated fields
  EXPECT_EQ(*head.Header("x-empty"), "");
  EXPECT_EQ(*head.Header("x-utf8"), "caf\xc3\xa9");
  EXPECT_EQ(head.Header("Content-Length"), nullptr);
  EXPECT_EQ(head.Header("missing"), nullptr);
}

TEST(HttpResponseParserTest, LfLineEndsAndLeadingEmptyLinesAreAccepted) {
  HttpResponseParser parser;
  EXPECT_EQ(FeedWhole(parser,
                      "\r\n\nHTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
                      "3\nabc\n2;x\r\nde\n0\nX-T: 1\n\n"),
            "abcde");
  EXPECT_EQ(parser.state(), State::kComplete) << parser.error_message();
  EXPECT_EQ(parser.head().status, 200);
}

TEST(HttpResponseParserTest, StatusLineVariants) {
  const auto head_of = [](absl::string_view status_line) {
    HttpResponseParser parser;
    FeedWhole(parser, absl::StrCat(status_line, "\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_EQ(parser.state(), State::kComplete) << status_line << ": " << parser.error_message();
    return parser.head();
  };
  EXPECT_EQ(head_of("HTTP/1.1 200").reason, "");  // no SP before an empty reason
  EXPECT_EQ(head_of("HTTP/1.1 200 ").reason, "");
  EXPECT_EQ(head_of("HTTP/1.1 500 Internal  Server Error").reason, "Internal  Server Error");
  EXPECT_EQ(head_of("HTTP/1.1 429 Too Many Requests").status, 429);
  EXPECT_EQ(head_of("HTTP/1.0 503 Service Unavailable").minor_version, 0);
  EXPECT_EQ(head_of("HTTP/1.1 599 x").status, 599);
}

TEST(HttpResponseParserTest, MalformedStatusLinesAreErrors) {
  for (const char* bad :
       {"HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1\r\n\r\n", "HTTP/1.1 \r\n\r\n",
        "HTTP/1.1 099 x\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n", "HTTP/1.1 200 OK\rX\r\n\r\n",
        "HTTP/1.x 200 OK\r\n\r\n", "HTTP/1.10 200 OK\r\n\r\n", "HTTP/2 200\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n", "HTTP/0.9 200 OK\r\n\r\n", "http/1.1 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n", "200 OK\r\n\r\n", "<html>\r\n\r\n", "HTTP/1.1-200-OK\r\n\r\n"}) {
    EXPECT_FALSE(ErrorMessage(bad).empty()) << bad;
  }
  EXPECT_EQ(ErrorMessage("SSH-2.0-OpenSSH\r\n\r\n"), "malformed status line: not an HTTP response");
}

TEST(HttpResponseParserTest, MalformedHeaderFieldsAreErrors) {
  for (const char* bad :
       {"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "HTTP/1.1 200 OK\r\n: v\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n"}) {
    EXPECT_FALSE(ErrorMessage(bad).empty()) << bad;
  }
  constexpr char kNul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
  EXPECT_EQ(ErrorMessage(absl::string_view(kNul, sizeof(kNul) - 1)),
            "invalid character in a header field value");
}

TEST(HttpResponseParserTest, InvalidOrConflictingContentLengthIsAnError) {
  for (const char* length : {"abc", "-1", "+3", "1 2", "0x10", "", "99999999999999999999999"}) {
    EXPECT_EQ(
        ErrorMessage(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", length, "\r\n\r\nabc")),
        "invalid Content-Length")
        << length;
  }
  EXPECT_EQ(ErrorMessage("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"),
            "conflicting Content-Length values");
  EXPECT_EQ(ErrorMessage("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc"),
            "conflicting Content-Length values");
  // The same length twice is one length.
  for (const char* same :
       {"Content-Length: 3, 3\r\n", "Content-Length: 3\r\nContent-Length: 3\r\n"}) {
    HttpResponseParser parser;
    EXPECT_EQ(FeedWhole(parser, absl::StrCat("HTTP/1.1 200 OK\r\n", same, "\r\nabc")), "abc");
    EXPECT_EQ(parser.state(), State::kComplete) << same;
  }
}

TEST(HttpResponseParserTest, MalformedChunkedBodiesAreErrors) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* bad :
       {"zz\r\n", "\r\n", ";ext\r\n", "-1\r\n", "0x5\r\nhello\r\n", "5 5\r\n", "5\r\r\n"}) {
    EXPECT_EQ(ErrorMessage(head + bad), "malformed chunk size") << bad;
  }
  for (const char* bad : {"2\r\nabc\r\n", "2\r\nab\r\r\n", "2\r\nab \r\n"}) {
    EXPECT_EQ(ErrorMessage(head + bad), "chunk data not followed by CRLF") << bad;
  }
  // Over 64 bits: refused rather than wrapped around to a small size.
  EXPECT_EQ(ErrorMessage(head + "ffffffffffffffffff\r\n"), "chunk size overflows");
  EXPECT_EQ(ErrorMessage(head + "10000000000000001\r\nx"), "chunk size overflows");
  // The largest size is valid, if never satisfied.
  HttpResponseParser largest;
  FeedWhole(largest, head + "ffffffffffffffff\r\nabc");
  EXPECT_EQ(largest.state(), State::kIncomplete) << largest.error_message();
  EXPECT_EQ(ErrorMessage(head + std::string(5000, '1')), "chunk-size line too long");
  EXPECT_EQ(ErrorMessage(head + "1;" + std::string(5000, 'e') + "\r\n"),
            "chunk-size line too long");
}

TEST(HttpResponseParserTest, HeadOverTheLimitIsAnError) {
  const std::string status = "HTTP/1.1 200 OK\r\nX: ";
  const std::string exact = status + std::string(64 - status.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 64u);
  HttpResponseParser fits(64);
  FeedWhole(fits, exact);
  EXPECT_TRUE(fits.head_complete()) << fits.error_message();
  const std::string over = status + std::string(64 - status.size() - 3, 'a') + "\r\n\r\n";
  EXPECT_EQ(ErrorMessage(over, 64), "response head over the limit of 64 bytes");
  // Refused as soon as it cannot fit, not when the head ends.
  EXPECT_EQ(ErrorMessage(status + std::string(100, 'a'), 64),
            "response head over the limit of 64 bytes");
  // Each head has the limit to itself: an interim one does not use up the final one's.
  HttpResponseParser after_interim(64);
  FeedWhole(after_interim,
            "HTTP/1.1 103 Early Hints\r\nLink: " + std::string(20, 'l') + "\r\n\r\n" + exact);
  EXPECT_TRUE(after_interim.head_complete()) << after_interim.error_message();
  // Trailers are held to the same limit.
  EXPECT_EQ(ErrorMessage("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " +
                             std::string(100, 't') + "\r\n\r\n",
                         64),
            "chunked trailer section over the head limit");
}

TEST(HttpResponseParserTest, ErrorsStickUntilReset) {
  HttpResponseParser parser;
  std::string body;
  const std::string bad = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
  EXPECT_EQ(parser.Feed(bad + "more", &body), bad.size());
  ASSERT_EQ(parser.state(), State::kError);
  EXPECT_EQ(parser.Feed("HTTP/1.1 200 OK\r\n\r\n", &body), 0u);
  parser.FeedEof();
  EXPECT_EQ(parser.error_message(), "invalid Content-Length");
  parser.Reset();
  EXPECT_EQ(parser.state(), State::kIncomplete);
  EXPECT_EQ(parser.error_message(), "");
  EXPECT_EQ(FeedWhole(parser, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"), "x");
  EXPECT_EQ(parser.state(), State::kComplete);
}

TEST(HttpResponseParserTest, ANullBodyDropsTheBytes) {
  HttpResponseParser parser;
  const std::string bytes =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  EXPECT_EQ(parser.Feed(bytes, nullptr), bytes.size());
  EXPECT_EQ(parser.state(), State::kComplete);
}

}  // namespace
}  // namespace ringserve::http
