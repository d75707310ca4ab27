// Writes the request_fuzzer seed corpus into argv[1] (modes as in request_fuzzer.cc): each
// request below in binary (mode 0) and text format (mode 1), a few builder inputs (mode 2)
// and --workers specs with session ids (mode 3). Valid requests cover text and token
// input, a session's first turn, an append with and without new input, a fork's session
// id, every sampler field and stop strings, chats with tool turns and earlier thoughts;
// invalid ones break one rule each.
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/text_format.h"
#include "ringserve/v1/inference.pb.h"
#include "tests/fuzz/seed_corpus.h"

namespace {

namespace pb = ringserve::v1;

pb::GenerateRequest Request(const std::function<void(pb::GenerateRequest&)>& edit) {
  pb::GenerateRequest r;
  r.set_request_id("req-1");
  r.set_session_id("conv-1");
  r.set_text("Hello, the world \xC3\xA9t\xC3\xA9 \xE4\xB8\xAD");
  edit(r);
  return r;
}

std::vector<std::pair<std::string, pb::GenerateRequest>> Requests() {
  auto sampled = [](pb::GenerateRequest& r) {
    pb::SamplingParams* s = r.mutable_sampling();
    s->set_temperature(0.8F);
    s->set_top_k(40);
    s->set_top_p(0.95F);
    s->set_min_p(0.05F);
    s->set_repetition_penalty(1.1F);
    s->set_presence_penalty(0.5F);
    s->set_frequency_penalty(-0.5F);
    s->set_seed(42);
    r.mutable_stop()->set_max_tokens(8);
    r.mutable_stop()->add_stop("\n\n");
    r.mutable_stop()->add_stop("User:");
    r.set_logprobs(3);
    r.set_priority(2);
  };
  return {
      {"text", Request([](pb::GenerateRequest&) {})},
      {"sampled", Request(sampled)},
      {"tokens", Request([](pb::GenerateRequest& r) {
         for (int id : {1, 5, 9, 63}) r.mutable_tokens()->add_ids(id);
         r.mutable_stop()->add_stop_token_ids(2);
         r.mutable_stop()->set_ignore_eos(true);
         r.mutable_sampling()->set_temperature(0);
       })},
      {"append", Request([](pb::GenerateRequest& r) {
         r.set_append(true);
         r.set_expected_history_tokens(12);
         r.set_text(" and then?");
       })},
      {"append_no_input", Request([](pb::GenerateRequest& r) {
         r.set_append(true);
         r.clear_text();
       })},
      {"fork_append", Request([](pb::GenerateRequest& r) {
         r.set_session_id("conv-1#f3");
         r.set_append(true);
         r.mutable_tokens()->add_ids(7);
       })},
      {"one_off", Request([](pb::GenerateRequest& r) { r.clear_session_id(); })},
      {"bad_utf8", Request([](pb::GenerateRequest& r) { r.set_text("ab\xC3(\xFF"); })},
      {"bad_token", Request([](pb::GenerateRequest& r) { r.mutable_tokens()->add_ids(-1); })},
      {"append_no_session", Request([](pb::GenerateRequest& r) {
         r.clear_session_id();
         r.set_append(true);
       })},
      {"no_input", Request([](pb::GenerateRequest& r) { r.clear_text(); })},
      {"nan_temperature",
       Request([](pb::GenerateRequest& r) { r.mutable_sampling()->set_temperature(NAN); })},
      {"zero_top_p", Request([](pb::GenerateRequest& r) { r.mutable_sampling()->set_top_p(0); })},
      {"logprobs_21", Request([](pb::GenerateRequest& r) { r.set_logprobs(21); })},
      {"max_tokens_0",
       Request([](pb::GenerateRequest& r) { r.mutable_stop()->set_max_tokens(0); })},
      {"max_tokens_5000",
       Request([](pb::GenerateRequest& r) { r.mutable_stop()->set_max_tokens(5000); })},
      // No tokens at all where the vocabulary adds no BOS (the byte-level world).
      {"empty_text", Request([](pb::GenerateRequest& r) { r.set_text(""); })},
      // Chat input: roles known and not, a content spelling a marker, bad UTF-8.
      {"chat", Request([](pb::GenerateRequest& r) {
         r.clear_text();
         for (const auto& [role, content] :
              {std::pair{"system", "Be brief."}, std::pair{"user", "hi<|im_end|>"},
               std::pair{"narrator", "\xC3("}}) {
           pb::ChatMessage* m = r.mutable_chat()->add_messages();
           m->set_role(role);
           m->set_content(content);
         }
       })},
      // Tool turns as Mistral writes them (a nine-character call id, a result naming it),
      // tools offered and a required single call; another world's format refuses or
      // renders them its own way.
      {"tool_turns", Request([](pb::GenerateRequest& r) {
         r.clear_text();
         pb::Chat* chat = r.mutable_chat();
         chat->add_messages()->set_role("user");
         chat->mutable_messages(0)->set_content("Weather in Paris?");
         pb::ChatMessage* call = chat->add_messages();
         call->set_role("assistant");
         pb::ToolCall* made = call->add_tool_calls();
         made->set_id("abcDEF123");
         made->set_name("get_weather");
         made->set_arguments(R"({"city": "Paris"})");
         pb::ChatMessage* result = chat->add_messages();
         result->set_role("tool");
         result->set_content(R"({"temp": 18})");
         result->set_tool_call_id("abcDEF123");
         pb::Tool* tool = chat->add_tools();
         tool->set_name("get_weather");
         tool->set_parameters(R"({"type": "object", "properties": {"city": {"type": "string"}}})");
         chat->mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
         chat->set_parallel_tool_calls(false);
       })},
      // An earlier reply with its thought, as a thinking model's conversation sends it back.
      {"thought_history", Request([](pb::GenerateRequest& r) {
         r.clear_text();
         r.clear_session_id();
         for (const auto& [role, content] :
              {std::pair{"system", "Be brief."}, std::pair{"user", "Hi"},
               std::pair{"assistant", "<think>\nGreet.\n</think>\n\nHello."},
               std::pair{"user", "2+2?"}}) {
           pb::ChatMessage* m = r.mutable_chat()->add_messages();
           m->set_role(role);
           m->set_content(content);
         }
         r.mutable_chat()->set_enable_thinking(false);
       })},
      // A thinking model asked to think before a JSON value.
      {"thought_before_json", Request([](pb::GenerateRequest& r) {
         r.clear_text();
         pb::ChatMessage* m = r.mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content("How many?");
         r.mutable_chat()->set_enable_thinking(true);
         r.mutable_response_format()->mutable_json_schema()->set_schema(
             R"({"type": "object", "properties": {"n": {"type": "integer"}}})");
       })},
      // A reply that is one of a few strings, from an input cut to its last tokens.
      {"choice_truncated", Request([](pb::GenerateRequest& r) {
         for (const char* choice : {"yes", "no (-)", "[maybe]"}) {
           r.mutable_response_format()->mutable_choice()->add_choices(choice);
         }
         r.set_truncate_prompt_tokens(2);
       })},
      // A prefilled reply start the model continues.
      {"continued_reply", Request([](pb::GenerateRequest& r) {
         r.clear_text();
         for (const auto& [role, content] :
              {std::pair{"user", "Name a colour."}, std::pair{"assistant", "<think>\nRed"}}) {
           pb::ChatMessage* m = r.mutable_chat()->add_messages();
           m->set_role(role);
           m->set_content(content);
         }
         r.mutable_chat()->set_continue_final_message(true);
         r.mutable_chat()->add_tools()->set_name("now");
       })},
      {"long_request_id",
       Request([](pb::GenerateRequest& r) { r.set_request_id(std::string(129, 'r')); })},
      {"empty_stop", Request([](pb::GenerateRequest& r) { r.mutable_stop()->add_stop(""); })},
      {"17_stops", Request([](pb::GenerateRequest& r) {
         for (int i = 0; i < 17; ++i) r.mutable_stop()->add_stop(std::to_string(i));
       })},
      {"long_stop",
       Request([](pb::GenerateRequest& r) { r.mutable_stop()->add_stop(std::string(257, 's')); })},
      {"bad_utf8_stop",
       Request([](pb::GenerateRequest& r) { r.mutable_stop()->add_stop("\xE4\xB8"); })},
      {"long_session_id",
       Request([](pb::GenerateRequest& r) { r.set_session_id(std::string(257, 's')); })},
      // Token input, so that each world's generator sees these.
      {"stop_string_on_tokens", Request([](pb::GenerateRequest& r) {
         r.mutable_tokens()->add_ids(3);
         r.mutable_stop()->add_stop("\n");
       })},
      {"65_stop_ids", Request([](pb::GenerateRequest& r) {
         r.mutable_tokens()->add_ids(3);
         for (int i = 0; i < 65; ++i) r.mutable_stop()->add_stop_token_ids(5);
       })},
      {"input_plus_max_tokens", Request([](pb::GenerateRequest& r) {
         for (int i = 0; i < 10; ++i) r.mutable_tokens()->add_ids(i);
         r.mutable_stop()->set_max_tokens(10);  // over a 16-token context
       })},
  };
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<ringserve::fuzz::SeedCorpus> corpus =
      ringserve::fuzz::SeedCorpus::FromArgs(argc, argv);
  if (!corpus) return 2;
  for (const auto& [name, request] : Requests()) {
    corpus->Add(name + ".bin", 0, request.SerializeAsString());
    std::string text;
    google::protobuf::TextFormat::PrintToString(request, &text);
    corpus->Add(name + ".txt", 1, text);
  }
  corpus->Add("built_short", 2, "abc\x01\x02\x03\x04\x05\x06\x07\x08");
  corpus->Add("built_long", 2,
              std::string(64, '\x5A') + "Hello world \xC3\xA9" + std::string(32, '\x01'));
  corpus->Add("workers.txt", 3, "10.0.0.1:50051, 10.0.0.2:50051,[::1]:7000\nconv-1#f2");
  corpus->Add("workers_dns.txt", 3, "dns:workers.default.svc:50051\nconv-9");
  corpus->Add("workers_bad.txt", 3, "host:0,host\nx");
  return corpus->ExitCode();
}
