// GenerateRequest -> JobRequest for chat input: rendered in the worker's chat format, the
// format's end of turn added to the stop ids when it is not already an end of generation,
// and each error naming its field.
#include "worker/server/request_conversion.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "tools/common/chat_format_flag.h"
#include "worker/grammar/regex.h"

namespace ringserve::server {
namespace {

namespace pb = ringserve::v1;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using tokenizer::ChatFormat;
using tools::ChatFormatFor;

using tokenizer::testing::ChatTokenizer;

pb::GenerateRequest ChatRequest(std::initializer_list<std::pair<const char*, const char*>> turns) {
  pb::GenerateRequest request;
  for (const auto& [role, content] : turns) {
    pb::ChatMessage* m = request.mutable_chat()->add_messages();
    m->set_role(role);
    m->set_content(content);
  }
  return request;
}

TEST(RequestConversionTest, DetokenizeNeedsATokenizerAndIdsOfItsVocabulary) {
  const std::unique_ptr<tokenizer::Tokenizer> tok = ChatTokenizer();
  pb::DetokenizeRequest request;
  request.add_token_ids(0);
  request.add_token_ids(tok->vocab_size() - 1);
  EXPECT_TRUE(DetokenizeIdsError(request, tok.get()).ok());
  EXPECT_EQ(DetokenizeIdsError(request, nullptr).code(), absl::StatusCode::kFailedPrecondition);
  request.add_token_ids(tok->vocab_size());
  const absl::Status outside = DetokenizeIdsError(request, tok.get());
  EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outside.message(), HasSubstr("token_ids[2]"));
  pb::DetokenizeRequest many;
  many.mutable_token_ids()->Resize(kMaxDetokenizeIds + 1, 0);
  EXPECT_THAT(DetokenizeIdsError(many, tok.get()).message(), HasSubstr("over the limit"));
}

TEST(RequestConversionTest, ChatIsRenderedAndStopsAtTheEndOfTurn) {
  const auto tok = ChatTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 512, .chat_format = ChatFormat::kChatMl};
  auto job = ToJobRequest(ChatRequest({{"user", "Hi"}}), tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  const auto want =
      tokenizer::EncodeChat(*tok, ChatFormat::kChatMl, {{{"user", "Hi"}}}, {.start = true});
  EXPECT_EQ(job->tokens, *want);
  // <|im_end|> is not this vocabulary's EOS (<|endoftext|> is): it joins the stop ids once.
  pb::GenerateRequest request = ChatRequest({{"user", "Hi"}});
  request.mutable_stop()->add_stop_token_ids(tokenizer::testing::kImEnd);
  job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->stop_token_ids, std::vector<int32_t>{tokenizer::testing::kImEnd});
  request.mutable_stop()->clear_stop_token_ids();
  request.mutable_stop()->set_ignore_eos(true);
  job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->stop_token_ids, Not(Contains(tokenizer::testing::kImEnd)));
  // The end of turn comes on top of the 64 stop ids a request may name.
  request.mutable_stop()->set_ignore_eos(false);
  for (int32_t id = 0; id < engine::kMaxRequestStopTokenIds; ++id) {
    request.mutable_stop()->add_stop_token_ids(id);
  }
  job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->stop_token_ids.size(), engine::kMaxRequestStopTokenIds + 1);
  request.mutable_stop()->add_stop_token_ids(engine::kMaxRequestStopTokenIds);
  job = ToJobRequest(request, tok.get(), limits);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("stop.stop_token_ids: 65 ids is over the limit"));

  // A session's next turn continues it: Llama 3's start token only begins a conversation.
  const ModelLimits llama3{
      .vocab_size = tok->vocab_size(), .context_length = 512, .chat_format = ChatFormat::kLlama3};
  pb::GenerateRequest next = ChatRequest({{"user", "And?"}});
  next.set_session_id("s");
  next.set_append(true);
  job = ToJobRequest(next, tok.get(), llama3);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tokens.front(), tokenizer::testing::kStartHeader);
  EXPECT_EQ(job->stop_token_ids, std::vector<int32_t>{tokenizer::testing::kEotId});
}

// Tokenize's chats: the prompt a Generate call would start from, however long.
TEST(RequestConversionTest, ChatPromptTokensAreGeneratesPromptWithoutTheContextLimit) {
  const auto tok = ChatTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 16, .chat_format = ChatFormat::kChatMl};
  pb::GenerateRequest request = ChatRequest({{"user", "A question longer than the context."}});
  auto ids = ChatPromptTokens(request.chat(), /*append=*/false, tok.get(), limits);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, *tokenizer::EncodeChat(*tok, ChatFormat::kChatMl,
                                         {{{"user", "A question longer than the context."}}},
                                         {.start = true}));
  EXPECT_EQ(ToJobRequest(request, tok.get(), limits).status().code(),
            absl::StatusCode::kInvalidArgument);  // Generate refuses it
  auto next =
      ChatPromptTokens(ChatRequest({{"user", "Hi"}}).chat(), /*append=*/true, tok.get(), limits);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, *tokenizer::EncodeChat(*tok, ChatFormat::kChatMl, {{{"user", "Hi"}}},
                                          {.start = false}));
  auto bad = ChatPromptTokens(ChatRequest({{"bot", "Hi"}}).chat(), false, tok.get(), limits);
  EXPECT_THAT(bad.status().message(), HasSubstr("chat.messages[0].role"));
}

// A template's default system prompt opens a new conversation that brings none.
TEST(RequestConversionTest, TheDefaultSystemPromptOpensConversationsWithoutOne) {
  const auto tok = ChatTokenizer();
  const ModelLimits limits{.vocab_size = tok->vocab_size(),
                           .context_length = 512,
                           .chat_format = ChatFormat::kChatMl,
                           .default_system_prompt = "Be kind."};
  const auto render = [&](std::vector<tokenizer::ChatMessage> messages, bool start) {
    return *tokenizer::EncodeChat(*tok, ChatFormat::kChatMl, messages, {.start = start});
  };
  auto job = ToJobRequest(ChatRequest({{"user", "Hi"}}), tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tokens, render({{"system", "Be kind."}, {"user", "Hi"}}, true));
  job = ToJobRequest(ChatRequest({{"system", "Be terse."}, {"user", "Hi"}}), tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tokens, render({{"system", "Be terse."}, {"user", "Hi"}}, true));
  pb::GenerateRequest next = ChatRequest({{"user", "And?"}});
  next.set_session_id("s");
  next.set_append(true);
  job = ToJobRequest(next, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tokens, render({{"user", "And?"}}, false));
  // Errors count the client's messages, not the default one.
  auto role = ToJobRequest(ChatRequest({{"user", "a"}, {"bot", "b"}}), tok.get(), limits);
  EXPECT_THAT(role.status().message(), HasSubstr("chat.messages[1].role"));
}

TEST(RequestConversionTest, BadChatRequestsNameTheirField) {
  const auto tok = ChatTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 64, .chat_format = ChatFormat::kChatMl};
  auto role = ToJobRequest(ChatRequest({{"user", "a"}, {"bot", "b"}}), tok.get(), limits);
  EXPECT_EQ(role.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(role.status().message(), HasSubstr("chat.messages[1].role"));
  auto utf8 = ToJobRequest(ChatRequest({{"user", "\xC3"}}), tok.get(), limits);
  EXPECT_THAT(utf8.status().message(), HasSubstr("chat.messages[0].content: not valid UTF-8"));
  auto empty = ToJobRequest(ChatRequest({}), tok.get(), limits);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto no_tokenizer = ToJobRequest(ChatRequest({{"user", "a"}}), nullptr, limits);
  EXPECT_THAT(no_tokenizer.status().message(), HasSubstr("chat: this model has no tokenizer"));
  ModelLimits none = limits;
  none.chat_format = ChatFormat::kNone;
  auto no_format = ToJobRequest(ChatRequest({{"user", "a"}}), tok.get(), none);
  EXPECT_EQ(no_format.status().code(), absl::StatusCode::kFailedPrecondition);
  auto long_chat = ToJobRequest(ChatRequest({{"user",
                                              "a much longer message than the context allows, "
                                              "sixty-four tokens being one per byte here"}}),
                                tok.get(), limits);
  EXPECT_THAT(long_chat.status().message(), HasSubstr("do not fit the context"));
}

// A text request ("hi") over the chat vocabulary, with a 64-token context.
struct TextCase {
  std::unique_ptr<tokenizer::Tokenizer> tok = ChatTokenizer();
  ModelLimits limits{.vocab_size = tok->vocab_size(), .context_length = 64};
  pb::GenerateRequest request = [] {
    pb::GenerateRequest r;
    r.set_text("hi");
    return r;
  }();
  absl::StatusOr<engine::JobRequest> Convert() const {
    return ToJobRequest(request, tok.get(), limits);
  }
};

TEST(RequestConversionTest, ResponseFormatsCompileAndBadSchemasNameTheirField) {
  TextCase c;
  auto plain = c.Convert();
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->response_format, nullptr);

  c.request.mutable_response_format()->mutable_json_object();
  auto object = c.Convert();
  ASSERT_TRUE(object.ok()) << object.status();
  ASSERT_NE(object->response_format, nullptr);
  grammar::Matcher matcher(object->response_format);
  EXPECT_TRUE(matcher.Advance(R"({"any": [1, "thing"]})"));
  EXPECT_TRUE(matcher.IsFinished());

  c.request.mutable_response_format()->mutable_json_schema()->set_schema(
      R"({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})");
  auto schema = c.Convert();
  ASSERT_TRUE(schema.ok()) << schema.status();
  grammar::Matcher strict(schema->response_format);
  EXPECT_FALSE(strict.Advance("{}"));
  EXPECT_TRUE(strict.Advance(R"({"n": 12})"));

  const std::string field = "response_format.json_schema.schema: ";
  for (const auto& [bad, why] : std::vector<std::pair<std::string, std::string>>{
           {R"x({"type": "string", "pattern": "a(?=b)"})x", "lookaround"},
           {R"({"type": "strin"})", "strin"},
           {"{", ""},
           {"\xC3", "not valid UTF-8"},
           {std::string(kMaxSchemaBytes + 1, ' '), "over the limit"}}) {
    c.request.mutable_response_format()->mutable_json_schema()->set_schema(bad);
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr(field)) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr(why)) << bad;
  }
  c.request.mutable_response_format()->set_regex("(yes|no)!?");
  auto regex = c.Convert();
  ASSERT_TRUE(regex.ok()) << regex.status();
  grammar::Matcher text(regex->response_format);
  EXPECT_FALSE(text.Advance(" "));
  EXPECT_TRUE(text.Advance("no!"));
  EXPECT_TRUE(text.IsFinished());
  for (const auto& [bad, why] : std::vector<std::pair<std::string, std::string>>{
           {"(a", "missing ')'"},
           {"\\bword", "word boundaries"},
           {"\xC3", "not valid UTF-8"},
           {std::string(grammar::RegexDfa::kMaxPatternBytes + 1, 'a'), "over the limit"}}) {
    c.request.mutable_response_format()->set_regex(bad);
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("response_format.regex: ")) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr(why)) << bad;
  }
  // A choice is taken literally, the regex syntax's characters included; one that starts
  // another may end there or go on.
  const std::vector<std::string> choices = {"yes",       "yes, a.b*", "(no)",       "[x]|{1}",
                                            "tab\there", "\\n/-$^?+", "caf\xC3\xA9"};
  for (const std::string& choice : choices) {
    c.request.mutable_response_format()->mutable_choice()->add_choices(choice);
  }
  auto choice = c.Convert();
  ASSERT_TRUE(choice.ok()) << choice.status();
  for (const std::string& each : choices) {
    grammar::Matcher m(choice->response_format);
    EXPECT_TRUE(m.Advance(each)) << each;
    EXPECT_TRUE(m.IsComplete()) << each;
  }
  grammar::Matcher yes(choice->response_format);
  EXPECT_TRUE(yes.Advance("yes"));
  EXPECT_FALSE(yes.IsFinished()) << "\"yes, a.b*\" goes on";
  EXPECT_TRUE(yes.Advance(", a.b*"));
  EXPECT_TRUE(yes.IsFinished());
  for (const char* other : {"ye", "no", "(no", "yes, aXb*", "[x]", "tab here"}) {
    grammar::Matcher m(choice->response_format);
    EXPECT_FALSE(m.Advance(other) && m.IsComplete()) << other;
  }
  for (const auto& [bad, why] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "1 to 256 strings (got 0)"},
           {std::vector<std::string>(257, "a"), "(got 257)"},
           {{"a", ""}, "choice 1 has 0 bytes"},
           {{std::string(1025, 'a')}, "choice 0 has 1025 bytes"},
           {{"a", "\xC3"}, "choice 1 is not valid UTF-8"}}) {
    c.request.mutable_response_format()->mutable_choice()->clear_choices();
    for (const std::string& each : bad) {
      c.request.mutable_response_format()->mutable_choice()->add_choices(each);
    }
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(refused.status().message(), HasSubstr("response_format.choice.choices: ")) << why;
    EXPECT_THAT(refused.status().message(), HasSubstr(why));
  }
  c.request.mutable_response_format()->set_grammar(
      "root ::= \"(\" list \")\"\nlist ::= [a-z]+ (\",\" list)?\n");
  auto gbnf = c.Convert();
  ASSERT_TRUE(gbnf.ok()) << gbnf.status();
  grammar::Matcher derived(gbnf->response_format);
  EXPECT_FALSE(derived.Advance("a"));
  EXPECT_TRUE(derived.Advance("(ab,c)"));
  EXPECT_TRUE(derived.IsFinished());
  for (const auto& [bad, why] : std::vector<std::pair<std::string, std::string>>{
           {"root ::= (\"a\"", "line 1, column"},
           {"root ::= root \"a\" | \"b\"", "left recursion"},
           {"root ::= x", "undefined rule 'x'"},
           {"root ::= \"\xC3\"", "not valid UTF-8"}}) {
    c.request.mutable_response_format()->set_grammar(bad);
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("response_format.grammar: ")) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr(why)) << bad;
  }
  c.request.mutable_response_format()->Clear();
  auto unset = c.Convert();
  EXPECT_THAT(unset.status().message(),
              HasSubstr("response_format: set json_object, json_schema, regex, grammar or choice"));
}

TEST(RequestConversionTest, PromptLogprobsAreOptionalAndBounded) {
  TextCase c;
  auto unset = c.Convert();
  ASSERT_TRUE(unset.ok()) << unset.status();
  EXPECT_FALSE(unset->prompt_logprobs.has_value());
  for (const int32_t top : {0, 20}) {
    c.request.set_prompt_logprobs(top);
    auto set = c.Convert();
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_EQ(set->prompt_logprobs, top);
  }
  for (const int32_t bad : {-1, 21}) {
    c.request.set_prompt_logprobs(bad);
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("prompt_logprobs")) << bad;
  }
}

TEST(RequestConversionTest, StopStringsAndWhetherTheMatchIsStreamed) {
  TextCase c;
  c.request.mutable_stop()->add_stop("</a>");
  auto left_out = c.Convert();
  ASSERT_TRUE(left_out.ok()) << left_out.status();
  EXPECT_EQ(left_out->stop_strings, std::vector<std::string>{"</a>"});
  EXPECT_FALSE(left_out->include_stop_string);
  c.request.mutable_stop()->set_include_stop_str_in_output(true);
  auto included = c.Convert();
  ASSERT_TRUE(included.ok()) << included.status();
  EXPECT_TRUE(included->include_stop_string);
}

// Left truncation keeps the input's last tokens: N of them, or with -1 as many as leave
// room for max_tokens in the 64-token context; the final usage reports what was dropped.
TEST(RequestConversionTest, TruncatePromptTokensKeepsTheInputsEnd) {
  TextCase c;
  std::vector<int32_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = 3 + i;
  c.request.mutable_tokens()->mutable_ids()->Add(ids.begin(), ids.end());
  EXPECT_THAT(c.Convert().status().message(), HasSubstr("do not fit the context"));

  struct Case {
    int32_t truncate;
    std::optional<int32_t> max_tokens;
    size_t kept;
  };
  for (const Case& k : {Case{10, std::nullopt, 10}, Case{-1, 4, 60}, Case{-1, std::nullopt, 63},
                        Case{-1, 0, 63}, Case{200, 8, 100}}) {
    c.request.set_truncate_prompt_tokens(k.truncate);
    if (k.max_tokens.has_value()) {
      c.request.mutable_stop()->set_max_tokens(*k.max_tokens);
    } else {
      c.request.clear_stop();
    }
    if (k.kept == 100) c.request.mutable_tokens()->mutable_ids()->Truncate(40);
    auto job = c.Convert();
    const size_t input = c.request.tokens().ids_size();
    ASSERT_TRUE(job.ok()) << k.truncate << ": " << job.status();
    const size_t kept = std::min(k.kept, input);
    ASSERT_EQ(job->tokens.size(), kept) << k.truncate;
    EXPECT_TRUE(std::equal(job->tokens.begin(), job->tokens.end(), ids.begin() + (input - kept)))
        << "the last tokens, in order";
    EXPECT_EQ(job->truncated_tokens, static_cast<int32_t>(input - kept)) << k.truncate;
    engine::JobResult result;
    pb::GenerateFinal final;
    FillFinal(result, *job, "r", "w", &final);
    EXPECT_EQ(final.usage().truncated_tokens(), static_cast<int32_t>(input - kept));
  }

  for (const int32_t bad : {0, -2}) {
    c.request.set_truncate_prompt_tokens(bad);
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("truncate_prompt_tokens: must be >= 1"));
  }
  c.request.set_truncate_prompt_tokens(8);
  c.request.set_session_id("s");
  c.request.set_append(true);
  auto refused = c.Convert();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("truncate_prompt_tokens: a session's history"));
}

TEST(RequestConversionTest, CompletionsAreBoundedAndEachHasItsOwnSeed) {
  TextCase c;
  c.request.mutable_sampling()->set_seed(~uint64_t{0} - 1);
  c.request.set_prompt_logprobs(2);
  EXPECT_EQ(NumCompletions(c.request), 1);
  for (const int32_t n : {0, 1, 3, kMaxCompletions}) {
    c.request.set_n(n);
    auto job = c.Convert();
    ASSERT_TRUE(job.ok()) << n << ": " << job.status();
    EXPECT_EQ(NumCompletions(c.request), std::max(1, n));
  }
  c.request.set_n(3);
  auto job = c.Convert();
  ASSERT_TRUE(job.ok()) << job.status();
  const std::vector<engine::JobRequest> jobs = CompletionJobs(*job, NumCompletions(c.request));
  ASSERT_EQ(jobs.size(), 3U);
  EXPECT_EQ(jobs[0].sampling.seed, ~uint64_t{0} - 1);
  EXPECT_EQ(jobs[1].sampling.seed, ~uint64_t{0});
  EXPECT_EQ(jobs[2].sampling.seed, 0U);   // wraps
  EXPECT_EQ(jobs[0].prompt_logprobs, 2);  // the input is scored once
  EXPECT_FALSE(jobs[1].prompt_logprobs.has_value());
  EXPECT_EQ(jobs[2].tokens, jobs[0].tokens);

  for (const int32_t bad : {-1, kMaxCompletions + 1}) {
    c.request.set_n(bad);
    auto refused = c.Convert();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("n: must be in [1, 64]")) << bad;
  }
  c.request.set_n(2);
  c.request.set_session_id("s");
  auto session = c.Convert();
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(session.status().message(), HasSubstr("Fork the session"));
}

// Scored input tokens go to prompt_logprobs, each with its token, logprob and alternatives.
TEST(RequestConversionTest, PromptLogprobsFillTheirOwnField) {
  std::vector<engine::GeneratedToken> scored(3);
  for (int i = 0; i < 3; ++i) {
    scored[i].id = 10 + i;
    scored[i].logprob = -0.5F * static_cast<float>(i);
    scored[i].top_logprobs = {{7, -0.1F}};
  }
  pb::GenerateResponse response;
  FillPromptLogprobs(scored, /*tokenizer=*/nullptr, &response);
  ASSERT_EQ(response.prompt_logprobs_size(), 3);
  EXPECT_EQ(response.prompt_logprobs(2).chosen().token_id(), 12);
  EXPECT_EQ(response.prompt_logprobs(2).chosen().logprob(), -1.0F);
  EXPECT_EQ(response.prompt_logprobs(2).chosen().token(), "");
  ASSERT_EQ(response.prompt_logprobs(0).top_size(), 1);
  EXPECT_EQ(response.prompt_logprobs(0).top(0).token_id(), 7);
  EXPECT_EQ(response.token_ids_size(), 0);
}

// Every candidate carries its token's text: a byte token's byte, a control token's marker.
TEST(RequestConversionTest, LogprobEntriesCarryTheirTokensText) {
  const auto tokenizer = tokenizer::testing::ChatTokenizer(/*llama3=*/false, "");
  engine::JobEvent event;
  engine::GeneratedToken& a = event.tokens.emplace_back();
  a.id = 'A';
  a.logprob = -0.25F;
  a.top_logprobs = {{'A', -0.25F}, {tokenizer::testing::kImEnd, -2.0F}, {0xC3, -3.0F}};
  pb::GenerateResponse response;
  FillResponse(event, /*with_logprobs=*/true, tokenizer.get(), &response);
  ASSERT_EQ(response.logprobs_size(), 1);
  EXPECT_EQ(response.logprobs(0).chosen().token(), "A");
  ASSERT_EQ(response.logprobs(0).top_size(), 3);
  EXPECT_EQ(response.logprobs(0).top(1).token(), "<|im_end|>");
  EXPECT_EQ(response.logprobs(0).top(2).token(), "\xC3");  // half a character, as bytes
}

// --chat-format: auto reads the checkpoint's template (and falls back to none when the
// vocabulary lacks the markers it names); a named format must have its markers.
TEST(ChatFormatFlagTest, AutoDetectsAndNamedFormatsNeedTheirMarkers) {
  tokenizer::Vocabulary v = tokenizer::testing::ChatVocabulary(/*llama3=*/false);
  v.chat_template = "{{ '<|im_start|>' + message['role'] }}";
  auto chatml = tokenizer::Tokenizer::Create(v);
  ASSERT_TRUE(chatml.ok()) << chatml.status();
  EXPECT_EQ(*ChatFormatFor("auto", chatml->get()), ChatFormat::kChatMl);
  EXPECT_EQ(*ChatFormatFor("auto", nullptr), ChatFormat::kNone);
  EXPECT_EQ(*ChatFormatFor("none", chatml->get()), ChatFormat::kNone);
  auto llama3 = ChatFormatFor("llama3", chatml->get());
  EXPECT_EQ(llama3.status().code(), absl::StatusCode::kFailedPrecondition);
  auto unknown = ChatFormatFor("vicuna", chatml->get());
  EXPECT_THAT(unknown.status().message(), HasSubstr("--chat-format: 'vicuna'"));
  v.chat_template = "{{ '<|start_header_id|>' }}";  // names markers this vocabulary lacks
  auto mismatched = tokenizer::Tokenizer::Create(v);
  ASSERT_TRUE(mismatched.ok()) << mismatched.status();
  EXPECT_EQ(*ChatFormatFor("auto", mismatched->get()), ChatFormat::kNone);
}

}  // namespace
}  // namespace ringserve::server
