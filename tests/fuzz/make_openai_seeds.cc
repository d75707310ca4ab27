// Writes the openai_fuzzer seed corpus into argv[1]: a body of each endpoint (completions,
// chat with tools and a schema, embeddings, tokenize, detokenize, and Responses API input
// items) after its mode byte, and a scripted Generate stream for the renderers (mode 6).
#include <initializer_list>
#include <optional>
#include <string>

#include "tests/fuzz/seed_corpus.h"

int main(int argc, char** argv) {
  std::optional<ringserve::fuzz::SeedCorpus> corpus =
      ringserve::fuzz::SeedCorpus::FromArgs(argc, argv);
  if (!corpus) return 2;
  corpus->Add("completion", 0,
              R"({"model": "m", "prompt": ["a", [1, 2]], "n": 2, "logprobs": 1, "echo": true,)"
              R"( "stop": ["\n"], "seed": -1, "logit_bias": {"5": -100}, "top_k": -1})");
  corpus->Add("chat", 1,
              R"({"messages": [{"role": "developer", "content": "s"}, {"role": "user",)"
              R"( "content": [{"type": "text", "text": "hi"}]}, {"role": "assistant",)"
              R"( "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]},)"
              R"( {"role": "tool", "tool_call_id": "c", "content": "r"}], "tools": [{"type":)"
              R"( "function", "function": {"name": "f", "parameters": {"type": "object"}}}],)"
              R"( "tool_choice": {"type": "function", "function": {"name": "f"}}, "stream": true,)"
              R"( "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})");
  corpus->Add("embeddings", 2, R"({"input": ["a", [1, 2]], "encoding_format": "base64"})");
  corpus->Add("tokenize", 3, R"({"messages": [{"role": "user", "content": "x"}]})");
  corpus->Add("detokenize", 4, R"({"tokens": [1, 2, 3]})");
  corpus->Add("responses", 5,
              R"({"input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}]},)"
              R"( {"type": "reasoning", "summary": []}, {"type": "function_call", "call_id": "c",)"
              R"( "name": "f", "arguments": "{}"}, {"type": "function_call_output", "call_id":)"
              R"( "c", "output": "r"}], "instructions": "i", "previous_response_id": "resp_a-f1",)"
              R"( "tools": [{"type": "function", "name": "f"}], "text": {"format": {"type":)"
              R"( "json_object"}}, "reasoning": {"effort": "low"}, "top_logprobs": 2,)"
              R"( "include": ["message.output_text.logprobs"], "metadata": {"k": "v"}})");
  corpus->Add("messages", 7,
              R"({"system": "s", "messages": [{"role": "user", "content": "hi"}, {"role":)"
              R"( "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input":)"
              R"( {}}]}, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",)"
              R"( "content": "r"}]}], "tools": [{"name": "f", "input_schema": {}}], "tool_choice":)"
              R"( {"type": "any"}, "thinking": {"type": "enabled", "budget_tokens": 9}})");
  corpus->Add("count_tokens", 8, R"({"messages": [{"role": "user", "content": "hi"}]})");
  // Messages: index, kind, then the kind's fields (see Messages in openai_fuzzer.cc); a
  // text is its length, then its bytes.
  std::string stream;
  const auto bytes = [&stream](std::initializer_list<int> values) {
    for (const int v : values) stream += static_cast<char>(v);
  };
  const auto text = [&stream](const std::string& s) {
    stream += static_cast<char>(s.size());
    stream += s;
  };
  bytes({0, 1});  // a thought
  text("thk");
  bytes({7, 0, 0});  // text
  text("hi");
  bytes({5, 0, 2, 0, 0});  // a call's first delta
  text("ab");
  text("f");
  text("{\"a\"");
  bytes({0, 3});  // the call whole
  text("ab");
  text("f");
  text("{}");
  bytes({1, 4});  // text with a logprob of 1.0 and an alternative's of -inf
  text("h");
  bytes({1, 9});
  text("h");
  bytes({0x3f, 0x80, 0, 0});
  text("t");
  bytes({0xff, 0x80, 0, 0});
  bytes({0, 5, 2, 1, 2, 1, 3});  // ids
  bytes({0, 6, 2});              // a final: max tokens
  text("");
  bytes({5, 3, 4, 1, 6, 7});  // completion 1's final: tool calls
  text("");
  bytes({5, 0, 5, 1});  // then the Responses stream fails
  corpus->Add("stream", 6, stream);
  return corpus->ExitCode();
}
