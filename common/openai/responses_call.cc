#include "common/openai/responses_call.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/openai/generate_call.h"
#include "common/openai/openai_error.h"
#include "common/openai/unary_call.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr char kJson[] = "application/json";

void RespondError(http::ResponseWriter& writer, const absl::Status& status) {
  writer.Respond(HttpStatusOf(status.code()), kJson, ErrorBody(status));
}

// A missing session, in the words of the API the client called.
absl::Status Gone(const absl::Status& status, absl::string_view field,
                  absl::string_view response_id) {
  if (status.code() != absl::StatusCode::kNotFound) return status;
  return absl::NotFoundError(absl::StrCat(
      field, ": no stored response '", response_id,
      "' (a response is kept as long as its conversation's session lives on its worker; "
      "resend the conversation as input instead)"));
}

// Forgets a session without waiting for the answer (a fork nobody will continue).
void CloseQuietly(const std::shared_ptr<pb::Inference::Stub>& stub, const HttpClient& client,
                  std::string session) {
  pb::CloseSessionRequest request;
  request.set_session_id(std::move(session));
  StartUnaryCall<pb::CloseSessionResponse>(
      [stub](auto* context, auto* r, auto* response, auto callback) {
        stub->async()->CloseSession(context, r, response, std::move(callback));
      },
      client, std::move(request), /*cancel_with=*/nullptr,
      [](const absl::StatusOr<pb::CloseSessionResponse>&) {});
}

void Run(const std::shared_ptr<pb::Inference::Stub>& stub, ResponsesCall call, ResponsesMeta meta,
         const HttpClient& client, std::shared_ptr<http::ResponseWriter> writer,
         std::function<void(const absl::Status&)> on_done) {
  std::vector<pb::GenerateRequest> requests;
  requests.push_back(std::move(call.request));
  StartGenerateStreams(stub, std::move(requests), call.stream,
                       std::make_unique<ResponsesRenderer>(std::move(meta)), client,
                       std::move(writer), std::move(on_done));
}

}  // namespace

void StartResponsesCall(const std::shared_ptr<pb::Inference::Stub>& stub, ResponsesCall call,
                        ResponsesMeta meta, const HttpClient& client,
                        std::shared_ptr<http::ResponseWriter> writer) {
  if (call.previous_session.empty()) {
    if (!call.store) {
      Run(stub, std::move(call), std::move(meta), client, std::move(writer), nullptr);
      return;
    }
    std::string session = meta.id;
    call.request.set_session_id(session);
    // A failed response is not continued: what its session holds goes at once.
    Run(stub, std::move(call), std::move(meta), client, std::move(writer),
        [stub, client, session = std::move(session)](const absl::Status& status) {
          if (!status.ok()) CloseQuietly(stub, client, session);
        });
    return;
  }
  pb::ForkRequest fork;
  fork.set_session_id(call.previous_session);
  fork.set_num_forks(1);
  // Not cancelled when the client leaves (a writer takes one such callback, which the Generate
  // stream needs): the Generate then starts cancelled, and its end closes the fork.
  StartUnaryCall<pb::ForkResponse>(
      [stub](auto* context, auto* r, auto* response, auto callback) {
        stub->async()->Fork(context, r, response, std::move(callback));
      },
      client, std::move(fork), /*cancel_with=*/nullptr,
      [stub, call = std::move(call), meta = std::move(meta), client,
       writer = std::move(writer)](absl::StatusOr<pb::ForkResponse> forked) mutable {
        if (!forked.ok()) {
          RespondError(*writer, Gone(forked.status(), "previous_response_id",
                                     ResponseIdOfSession(call.previous_session)));
          return;
        }
        if (forked->session_ids().empty()) {
          RespondError(*writer, absl::InternalError("Fork answered without a session"));
          return;
        }
        std::string session = forked->session_ids(0);
        meta.id = ResponseIdOfSession(session);
        call.request.set_session_id(session);
        call.request.set_append(true);
        const bool store = call.store;
        Run(stub, std::move(call), std::move(meta), client, std::move(writer),
            [stub, client, session = std::move(session), store](const absl::Status& status) {
              if (!status.ok() || !store) CloseQuietly(stub, client, session);
            });
      });
}

void StartDeleteResponse(const std::shared_ptr<pb::Inference::Stub>& stub,
                         const std::string& response_id, const HttpClient& client,
                         std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<std::string> session = SessionOfResponseId(response_id, "response_id");
  if (!session.ok()) {
    RespondError(*writer, Gone(absl::NotFoundError(""), "response_id", response_id));
    return;
  }
  pb::CloseSessionRequest request;
  request.set_session_id(*std::move(session));
  http::ResponseWriter* cancel_with = writer.get();
  StartUnaryCall<pb::CloseSessionResponse>(
      [stub](auto* context, auto* r, auto* response, auto callback) {
        stub->async()->CloseSession(context, r, response, std::move(callback));
      },
      client, std::move(request), cancel_with,
      [writer = std::move(writer),
       response_id](const absl::StatusOr<pb::CloseSessionResponse>& closed) {
        if (!closed.ok()) {
          RespondError(*writer, Gone(closed.status(), "response_id", response_id));
          return;
        }
        writer->Respond(
            200, kJson,
            Dump(OrderedJson{
                {"id", response_id}, {"object", "response.deleted"}, {"deleted", true}}));
      });
}

}  // namespace ringserve::openai
