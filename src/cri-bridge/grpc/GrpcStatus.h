// gRPC status codes and the grpc-status / grpc-message trailers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace monocri::grpc {

// Numbers fixed by the gRPC protocol (doc/statuscodes.md).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "DEADLINE_EXCEEDED" etc.; "CODE(42)" for a number outside the table.
std::string statusCodeName(StatusCode code);

// Every error answered to a client: a code and a message a user can act on.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool isOk() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const;  // "NOT_FOUND: container abc not found"

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// grpc-message is percent-encoded: bytes outside printable ASCII (0x20-0x7E) and '%' itself
// become %XX, so UTF-8 and control characters survive the HTTP/2 header.
std::string percentEncodeGrpcMessage(std::string_view message);
// Lenient, as the spec asks of receivers: a malformed escape is kept as it is.
std::string percentDecodeGrpcMessage(std::string_view encoded);

// The grpc-status trailer value: a decimal number 0-16 is required; others are rejected.
std::optional<StatusCode> parseGrpcStatus(std::string_view value);

// When a response lacks grpc-status, the HTTP status decides (gRPC's http-grpc-status-mapping).
StatusCode statusCodeFromHttpStatus(int httpStatus);

}  // namespace monocri::grpc
