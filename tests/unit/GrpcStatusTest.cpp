#include "cri-bridge/grpc/GrpcStatus.h"

#include <gtest/gtest.h>

namespace monocri::grpc {
namespace {

TEST(GrpcStatus, NamesAsTheProtocolSpellsThem) {
  EXPECT_EQ(statusCodeName(StatusCode::kOk), "OK");
  EXPECT_EQ(statusCodeName(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(statusCodeName(StatusCode::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_EQ(statusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(statusCodeName(static_cast<StatusCode>(42)), "CODE(42)");
  EXPECT_EQ(Status(StatusCode::kNotFound, "container x").toString(), "NOT_FOUND: container x");
  EXPECT_EQ(Status::ok().toString(), "OK");
}

TEST(GrpcStatus, PercentEncodingKeepsPrintableAsciiAndEscapesTheRest) {
  EXPECT_EQ(percentEncodeGrpcMessage("plain text: ok!"), "plain text: ok!");
  EXPECT_EQ(percentEncodeGrpcMessage("100%"), "100%25");
  EXPECT_EQ(percentEncodeGrpcMessage("a\nb\tc"), "a%0Ab%09c");
  EXPECT_EQ(percentEncodeGrpcMessage("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(percentEncodeGrpcMessage(std::string("\x00\x7f", 2)), "%00%7F");
}

TEST(GrpcStatus, PercentDecodingRoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c)
    all.push_back(static_cast<char>(c));
  EXPECT_EQ(percentDecodeGrpcMessage(percentEncodeGrpcMessage(all)), all);
}

TEST(GrpcStatus, PercentDecodingIsLenientWithMalformedEscapes) {
  EXPECT_EQ(percentDecodeGrpcMessage("%"), "%");
  EXPECT_EQ(percentDecodeGrpcMessage("%4"), "%4");
  EXPECT_EQ(percentDecodeGrpcMessage("%zz%41"), "%zzA");
  EXPECT_EQ(percentDecodeGrpcMessage("%e2%82%ac"), "\xe2\x82\xac");
}

TEST(GrpcStatus, ParsesOnlyTheCodesThatExist) {
  EXPECT_EQ(parseGrpcStatus("0"), StatusCode::kOk);
  EXPECT_EQ(parseGrpcStatus("12"), StatusCode::kUnimplemented);
  EXPECT_EQ(parseGrpcStatus("16"), StatusCode::kUnauthenticated);
  EXPECT_FALSE(parseGrpcStatus("17"));
  EXPECT_FALSE(parseGrpcStatus("-1"));
  EXPECT_FALSE(parseGrpcStatus(""));
  EXPECT_FALSE(parseGrpcStatus("1 "));
  EXPECT_FALSE(parseGrpcStatus("0x1"));
}

TEST(GrpcStatus, HttpStatusMappingForResponsesWithoutGrpcStatus) {
  EXPECT_EQ(statusCodeFromHttpStatus(400), StatusCode::kInternal);
  EXPECT_EQ(statusCodeFromHttpStatus(401), StatusCode::kUnauthenticated);
  EXPECT_EQ(statusCodeFromHttpStatus(403), StatusCode::kPermissionDenied);
  EXPECT_EQ(statusCodeFromHttpStatus(404), StatusCode::kUnimplemented);
  EXPECT_EQ(statusCodeFromHttpStatus(503), StatusCode::kUnavailable);
  EXPECT_EQ(statusCodeFromHttpStatus(500), StatusCode::kUnknown);
}

}  // namespace
}  // namespace monocri::grpc
