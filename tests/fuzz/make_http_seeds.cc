// Writes the http_fuzzer seed corpus into argv[1]: requests (a GET, pipelined POSTs with
// Content-Length and chunked bodies, 100-continue), responses (a JSON answer, a chunked
// stream of Server-Sent Events, an interim 100, a close-delimited body) and event streams,
// each after its mode byte and a read-size seed.
#include <optional>
#include <string>

#include "tests/fuzz/seed_corpus.h"

int main(int argc, char** argv) {
  std::optional<ringserve::fuzz::SeedCorpus> corpus =
      ringserve::fuzz::SeedCorpus::FromArgs(argc, argv);
  if (!corpus) return 2;
  const std::string seed = "\x07";
  corpus->Add("get", 0, seed + "GET /v1/models?x=1 HTTP/1.1\r\nHost: r\r\nAccept: */*\r\n\r\n");
  corpus->Add("pipelined", 0,
              seed +
                  "POST /v1/completions HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
                  "Content-Length: 17\r\n\r\n{\"prompt\": \"hi\"}\n"
                  "POST /tokenize HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: "
                  "100-continue\r\n\r\n5;x=y\r\n{\"a\":\r\n2\r\n1}\r\n0\r\nTrailer: t\r\n\r\n"
                  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  corpus->Add("json_response", 1,
              seed +
                  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                  "11\r\n\r\n{\"ok\":true}HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  corpus->Add("sse_response", 1,
              seed +
                  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: "
                  "text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1a\r\ndata: {\"choices\": [1]}\n\n\r\n10\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
  corpus->Add("close_delimited", 1,
              seed + "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close");
  corpus->Add("events", 2,
              seed +
                  "\xEF\xBB\xBF: comment\nevent: chunk\nid: 7\ndata: {\"a\":\n"
                  "data:  1}\r\n\r\ndata: x\rretry: 10\r\rdata\n\ndata: [DONE]\n\n");
  return corpus->ExitCode();
}
