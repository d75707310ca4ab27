// ringserve-cli's chats: --message flags and tool calling (--tools FILE, --tool-choice) into a
// chat request, and the calls a reply made, for printing.
#ifndef RINGSERVE_TOOLS_RINGSERVE_CLI_CHAT_TOOLS_H_
#define RINGSERVE_TOOLS_RINGSERVE_CLI_CHAT_TOOLS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::tools::cli {

// --message ROLE:TEXT flags (ROLE@ID: a tool result answering call ID) as `chat`'s messages.
// INVALID_ARGUMENT for one without a colon.
absl::Status AddMessages(const std::vector<std::string>& messages, ringserve::v1::Chat* chat);

// `tools_file`: a JSON array of tools, each {"name", "description", "parameters"} or wrapped
// as OpenAI's API writes them ({"type": "function", "function": {...}}). `choice`: auto
// (or empty), none, required, or a tool's name (required, that tool). INVALID_ARGUMENT for
// a file that is not such an array; the worker checks the rest.
absl::Status AddTools(const std::string& tools_file, const std::string& choice,
                      ringserve::v1::Chat* chat);

// A call as --json prints it.
nlohmann::json ToolCallJson(const ringserve::v1::ToolCall& call);
// A call as a line of text: "[call ID] NAME ARGUMENTS".
std::string ToolCallLine(const ringserve::v1::ToolCall& call);

}  // namespace ringserve::tools::cli

#endif  // RINGSERVE_TOOLS_RINGSERVE_CLI_CHAT_TOOLS_H_
