#include "tools/ringserve-cli/chat_tools.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text_file.h"

namespace ringserve::tools::cli {
namespace {

namespace pb = ringserve::v1;

absl::Status BadTools(const std::string& file, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--tools: ", file, ": ", why));
}

}  // namespace

absl::Status AddMessages(const std::vector<std::string>& messages, pb::Chat* chat) {
  for (const std::string& message : messages) {
    const size_t colon = message.find(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--message: '", message, "' is not ROLE:TEXT (user:Hello)"));
    }
    pb::ChatMessage* m = chat->add_messages();
    // ROLE@ID: a tool result naming the call it answers (tool@abcDEF123:18C).
    const std::string role = message.substr(0, colon);
    const size_t at = role.find('@');
    m->set_role(role.substr(0, at));
    if (at != std::string::npos) m->set_tool_call_id(role.substr(at + 1));
    m->set_content(message.substr(colon + 1));
  }
  return absl::OkStatus();
}

absl::Status AddTools(const std::string& tools_file, const std::string& choice, pb::Chat* chat) {
  pb::ToolChoice* tool_choice = chat->mutable_tool_choice();
  if (choice == "none") {
    tool_choice->set_mode(pb::ToolChoice::MODE_NONE);
  } else if (choice == "required") {
    tool_choice->set_mode(pb::ToolChoice::MODE_REQUIRED);
  } else if (!choice.empty() && choice != "auto") {
    tool_choice->set_mode(pb::ToolChoice::MODE_REQUIRED);
    tool_choice->set_name(choice);
  }
  if (tools_file.empty()) return absl::OkStatus();
  RS_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(tools_file, "tools"));
  const nlohmann::json tools = nlohmann::json::parse(text, nullptr, false);
  if (!tools.is_array()) return BadTools(tools_file, "not a JSON array of tools");
  for (size_t i = 0; i < tools.size(); ++i) {
    const nlohmann::json& entry = tools[i];
    const nlohmann::json& tool =
        entry.is_object() && entry.contains("function") ? entry["function"] : entry;
    if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) {
      return BadTools(tools_file, absl::StrCat("tool ", i, " has no \"name\""));
    }
    pb::Tool* added = chat->add_tools();
    added->set_name(tool["name"].get<std::string>());
    if (tool.contains("description") && tool["description"].is_string()) {
      added->set_description(tool["description"].get<std::string>());
    }
    if (tool.contains("parameters")) added->set_parameters(tool["parameters"].dump());
  }
  return absl::OkStatus();
}

nlohmann::json ToolCallJson(const pb::ToolCall& call) {
  return {{"id", call.id()}, {"name", call.name()}, {"arguments", call.arguments()}};
}

std::string ToolCallLine(const pb::ToolCall& call) {
  return absl::StrCat("[call ", call.id(), "] ", call.name(), " ", call.arguments());
}

}  // namespace ringserve::tools::cli
