// HttpRequestParser on byte streams: requests whole, split at every byte, pipelined, and the
// malformed or oversized ones a server must refuse (RFC 9112).
#include "common/http/http_request_parser.h"

#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace ringserve::http {
namespace {

using State = HttpRequestParser::State;

// Feeds all of `bytes` at once; the parser must consume all of it unless it failed.
HttpRequestParser ParseWhole(absl::string_view bytes, HttpParserLimits limits = {}) {
  HttpRequestParser parser(limits);
  const size_t used = parser.Feed(bytes);
  if (parser.state() == State::kComplete) {
    EXPECT_EQ(used, bytes.size());
  }
  return parser;
}

int ErrorStatus(absl::string_view bytes, HttpParserLimits limits = {}) {
  const HttpRequestParser parser = ParseWhole(bytes, limits);
  EXPECT_EQ(parser.state(), State::kError) << bytes;
  EXPECT_FALSE(parser.error_message().empty());
  return parser.error_status();
}

TEST(HttpRequestParserTest, ParsesASimpleGet) {
  HttpRequestParser parser = ParseWhole(
      "GET /v1/models?x=1 HTTP/1.1\r\nHost: example\r\nX-Trace: \t spaced value \t\r\n\r\n");
  ASSERT_EQ(parser.state(), State::kComplete);
  EXPECT_TRUE(parser.keep_alive());
  EXPECT_FALSE(parser.expects_continue());
  const HttpRequest request = parser.TakeRequest();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/v1/models?x=1");
  EXPECT_EQ(request.path, "/v1/models");
  EXPECT_EQ(request.minor_version, 1);
  ASSERT_EQ(request.headers.size(), 2u);
  EXPECT_EQ(request.headers[1].first, "x-trace");
  EXPECT_EQ(request.headers[1].second, "spaced value");
  EXPECT_EQ(request.body, "");
  EXPECT_EQ(request.peer, "");
  // Ready for the next request.
  EXPECT_EQ(parser.state(), State::kIncomplete);
  EXPECT_FALSE(parser.started());
}

TEST(HttpRequestParserTest, PostBodyByContentLengthArrivingByteByByte) {
  const std::string bytes =
      "POST /v1/completions HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
  HttpRequestParser parser;
  EXPECT_FALSE(parser.started());
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_EQ(parser.state(), State::kIncomplete) << i;
    ASSERT_EQ(parser.Feed(absl::string_view(&bytes[i], 1)), 1u) << i;
    EXPECT_TRUE(parser.started());
    EXPECT_EQ(parser.head_complete(), i + 1 >= bytes.size() - 11) << i;
  }
  ASSERT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(parser.Feed("more"), 0u);  // nothing past the end of the request
  EXPECT_EQ(parser.TakeRequest().body, "hello world");
}

TEST(HttpRequestParserTest, ChunkedBodyWithExtensionsAndTrailersAtEverySplit) {
  const std::string bytes =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n6 ; ext=\"q\"\r\n world\r\nA\r\n0123456789\r\n"
      "0;last\r\nX-Trailer: t\r\nY: u\r\n\r\n";
  for (size_t split = 0; split <= bytes.size(); ++split) {
    HttpRequestParser parser;
    size_t used = parser.Feed(absl::string_view(bytes).substr(0, split));
    ASSERT_EQ(used, split);
    used += parser.Feed(absl::string_view(bytes).substr(split));
    ASSERT_EQ(parser.state(), State::kComplete) << split << ": " << parser.error_message();
    EXPECT_EQ(used, bytes.size());
    const HttpRequest request = parser.TakeRequest();
    EXPECT_EQ(request.body, "hello world0123456789") << split;
    EXPECT_EQ(request.Header("x-trailer"), nullptr);  // trailers are dropped
  }
}

TEST(HttpRequestParserTest, PipelinedRequestsAreTakenOneAtATime) {
  const std::string first = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second = "GET /b HTTP/1.1\r\n\r\n";
  const std::string bytes = first + second;
  HttpRequestParser parser;
  const size_t used = parser.Feed(bytes);
  ASSERT_EQ(parser.state(), State::kComplete);
  EXPECT_EQ(used, first.size());
  EXPECT_EQ(parser.TakeRequest().path, "/a");
  EXPECT_EQ(parser.Feed(absl::string_view(bytes).substr(used)), second.size());
  ASSERT_EQ(parser.state(), State::kComplete);
  const HttpRequest request = parser.TakeRequest();
  EXPECT_EQ(request.path, "/b");
  EXPECT_EQ(request.body, "");
}

TEST(HttpRequestParserTest, HeaderNamesAreLowerCasedAndLookedUpSo) {
  HttpRequestParser parser =
      ParseWhole("PUT /x HTTP/1.1\r\nCoNtEnT-LeNgTh: 2\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\nok");
  ASSERT_EQ(parser.state(), State::kComplete);
  const HttpRequest request = parser.TakeRequest();
  EXPECT_EQ(request.body, "ok");
  ASSERT_NE(request.Header("content-length"), nullptr);
  EXPECT_EQ(*request.Header("content-length"), "2");
  EXPECT_EQ(*request.Header("x-dup"), "1");  // the first of repeated fields
  EXPECT_EQ(request.Header("Content-Length"), nullptr);
  EXPECT_EQ(request.Header("missing"), nullptr);
}

TEST(HttpRequestParserTest, HeadOverTheLimitIs431) {
  const HttpParserLimits limits{.max_head_bytes = 64};
  const std::string head = "GET / HTTP/1.1\r\nX: ";
  const std::string exact = head + std::string(64 - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 64u);
  EXPECT_EQ(ParseWhole(exact, limits).state(), State::kComplete);
  const std::string over = head + std::string(64 - head.size() - 3, 'a') + "\r\n\r\n";
  EXPECT_EQ(ErrorStatus(over, limits), 431);
  // Refused as soon as it cannot fit, not when the head ends.
  EXPECT_EQ(ErrorStatus(head + std::string(100, 'a'), limits), 431);
}

TEST(HttpRequestParserTest, BodyOverTheLimitIs413) {
  const HttpParserLimits limits{.max_body_bytes = 10};
  EXPECT_EQ(ParseWhole("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits).state(),
            State::kComplete);
  // Refused from the head alone, before any body byte arrives.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits), 413);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 413);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "6\r\n012345\r\n5\r\n01234\r\n",
                        limits),
            413);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "fffffffffffffffffffffff\r\n"),
            413);
}

TEST(HttpRequestParserTest, MalformedRequestLinesAre400And505ForOtherVersions) {
  for (const char* bad :
       {"GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.x\r\n\r\n", "GET / SPDY/3.1\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n", "garbage\r\n\r\n", "GET / http/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"}) {
    EXPECT_EQ(ErrorStatus(bad), 400) << bad;
  }
  EXPECT_EQ(ErrorStatus("GET / HTTP/2.0\r\n\r\n"), 505);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.2\r\n\r\n"), 505);
  EXPECT_EQ(ErrorStatus("GET / HTTP/0.9\r\n\r\n"), 505);
}

TEST(HttpRequestParserTest, MalformedHeaderFieldsAre400) {
  for (const char* bad :
       {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", "GET / HTTP/1.1\r\nName : v\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "GET / HTTP/1.1\r\n: v\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n"}) {
    EXPECT_EQ(ErrorStatus(bad), 400) << bad;
  }
  constexpr char kNul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
  EXPECT_EQ(ErrorStatus(absl::string_view(kNul, sizeof(kNul) - 1)), 400);
}

TEST(HttpRequestParserTest, AmbiguousOrUnsupportedFramingIs400) {
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            400);
  for (const char* length : {"abc", "-1", "+3", "1 2", "3, 4", ""}) {
    EXPECT_EQ(
        ErrorStatus(std::string("POST / HTTP/1.1\r\nContent-Length: ") + length + "\r\n\r\nabc"),
        400)
        << length;
  }
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), 400);
  // The same length twice is one length.
  EXPECT_EQ(ParseWhole("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc").state(),
            State::kComplete);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"), 400);
}

TEST(HttpRequestParserTest, KeepAliveFollowsTheVersionAndConnectionHeader) {
  const auto keep_alive = [](absl::string_view head) {
    const HttpRequestParser parser = ParseWhole(head);
    EXPECT_EQ(parser.state(), State::kComplete) << head;
    return parser.keep_alive();
  };
  EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(keep_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
  HttpRequestParser parser = ParseWhole("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(parser.TakeRequest().minor_version, 0);
}

TEST(HttpRequestParserTest, ExpectContinueIsSignalledUntilTheBodyArrives) {
  HttpRequestParser parser;
  const std::string head = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
  EXPECT_EQ(parser.Feed(head.substr(0, head.size() - 1)), head.size() - 1);
  EXPECT_FALSE(parser.expects_continue());  // not before the head is whole
  parser.Feed("\n");
  EXPECT_EQ(parser.state(), State::kIncomplete);
  EXPECT_TRUE(parser.head_complete());
  EXPECT_TRUE(parser.expects_continue());
  EXPECT_EQ(parser.request().method, "POST");
  parser.Feed("body");
  EXPECT_EQ(parser.state(), State::kComplete);
  EXPECT_FALSE(parser.expects_continue());

  // Nothing to wait for without a body; HTTP/1.0 clients cannot expect it (RFC 9110 10.1.1);
  // a body too large is refused instead.
  EXPECT_FALSE(ParseWhole("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
                   .expects_continue());
  EXPECT_FALSE(ParseWhole("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                   .expects_continue());
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
                        {.max_body_bytes = 10}),
            413);
}

TEST(HttpRequestParserTest, LeadingEmptyLinesAndAbsoluteTargets) {
  HttpRequestParser parser = ParseWhole("\r\n\r\nGET http://host:8080/v1/x?y=1 HTTP/1.1\n\n");
  ASSERT_EQ(parser.state(), State::kComplete) << parser.error_message();
  const HttpRequest request = parser.TakeRequest();
  EXPECT_EQ(request.target, "http://host:8080/v1/x?y=1");
  EXPECT_EQ(request.path, "/v1/x");
  EXPECT_EQ(ParseWhole("OPTIONS * HTTP/1.1\r\n\r\n").request().path, "*");
}

}  // namespace
}  // namespace ringserve::http
