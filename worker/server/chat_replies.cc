#include "worker/server/chat_replies.h"

#include <utility>

namespace ringserve::server {

namespace pb = ringserve::v1;

bool ThoughtBeforeConstraint(const pb::GenerateRequest& request) {
  return request.has_response_format() ||
         request.chat().tool_choice().mode() == pb::ToolChoice::MODE_REQUIRED;
}

bool ReplyMayThink(const pb::GenerateRequest& request) {
  const pb::Chat& chat = request.chat();
  // Asked for explicitly, the thought comes before a response format's value or the calls
  // a reply must make.
  if (chat.has_enable_thinking()) return chat.enable_thinking();
  return !request.has_response_format() &&
         chat.tool_choice().mode() != pb::ToolChoice::MODE_REQUIRED;
}

std::optional<tokenizer::ThoughtSplitter> ReplyThoughts(const pb::GenerateRequest& request,
                                                        const tokenizer::Tokenizer* tokenizer,
                                                        tokenizer::ChatFormat format) {
  if (!request.has_chat() || tokenizer == nullptr) return std::nullopt;
  const pb::Chat& chat = request.chat();
  const tokenizer::Thinking thinking = tokenizer::ThinkingOf(*tokenizer, format);
  std::optional<tokenizer::ThoughtSplitter> splitter;
  if (thinking != tokenizer::Thinking::kNone) {
    // A kAlways model's prompt opens the thought unless the request closed it, and so does
    // any thinking model's before a response format's value.
    splitter.emplace(
        (thinking == tokenizer::Thinking::kAlways || ThoughtBeforeConstraint(request)) &&
        ReplyMayThink(request));
  } else if (tokenizer::MistralThoughtMarkersOf(*tokenizer, format).has_value()) {
    // Magistral opens its own thought with the (spelled) [THINK] token.
    splitter.emplace(false, tokenizer::kMistralThoughtOpen, tokenizer::kMistralThoughtClose);
  } else {
    return std::nullopt;
  }
  // A continued reply's start was the client's: it only sets where the reply stands.
  if (chat.continue_final_message() && chat.messages_size() > 0) {
    splitter->Resume(chat.messages(chat.messages_size() - 1).content());
  }
  return splitter;
}

void SplitThought(tokenizer::ThoughtSplitter& splitter, bool last, pb::GenerateResponse* response) {
  tokenizer::ThoughtSplitter::Output out = splitter.Feed(response->text());
  if (last) {
    tokenizer::ThoughtSplitter::Output rest = splitter.Finish();
    out.thought += rest.thought;
    out.answer += rest.answer;
  }
  response->set_text(std::move(out.answer));
  response->set_reasoning(std::move(out.thought));
}

}  // namespace ringserve::server
