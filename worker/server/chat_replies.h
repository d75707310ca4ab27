// Chat replies of models that think first (tokenizer::Thinking): whether a request lets the
// model think, and the thought split out of the streamed text into GenerateResponse.reasoning.
#ifndef RINGSERVE_WORKER_SERVER_CHAT_REPLIES_H_
#define RINGSERVE_WORKER_SERVER_CHAT_REPLIES_H_

#include <optional>

#include "ringserve/v1/inference.pb.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/thought_splitter.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::server {

// The reply may think: Chat.enable_thinking true, or, unset, no response_format or
// tool_choice MODE_REQUIRED (ThoughtBeforeConstraint), whose constraint binds from the first
// token unless the thought was asked for; never with enable_thinking false.
bool ReplyMayThink(const ringserve::v1::GenerateRequest& request);
// The request holds its whole reply to a constraint (a response_format, or MODE_REQUIRED's
// calls), which a thought asked for comes before: the generation prompt then opens the thought
// and the constraint binds on "</think>".
bool ThoughtBeforeConstraint(const ringserve::v1::GenerateRequest& request);

// The splitter of a chat request's replies when the model thinks; nullopt otherwise (no chat,
// no tokenizer, or a model that does not think).
std::optional<tokenizer::ThoughtSplitter> ReplyThoughts(
    const ringserve::v1::GenerateRequest& request, const tokenizer::Tokenizer* tokenizer,
    tokenizer::ChatFormat format);

// Moves the thought in a message's text into its `reasoning` (finishing the splitter when
// `last`), leaving the answer in `text`.
void SplitThought(tokenizer::ThoughtSplitter& splitter, bool last,
                  ringserve::v1::GenerateResponse* response);

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_CHAT_REPLIES_H_
