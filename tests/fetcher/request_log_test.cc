// RequestLog: the count of requests and the longest chain of them that did not overlap.
#include "fetcher/request_log.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace hoist {
namespace {

TEST(RequestLogTest, LongestChainOfIntervals) {
  EXPECT_EQ(LongestSequentialChain({}), 0u);
  EXPECT_EQ(LongestSequentialChain({{0, 10}}), 1u);
  // Three in parallel after one: two steps.
  EXPECT_EQ(LongestSequentialChain({{0, 10}, {10, 20}, {11, 25}, {12, 19}}), 2u);
  // probe, manifest, config, then two layers each footer then TOC: five.
  EXPECT_EQ(LongestSequentialChain({{0, 1}, {1, 2}, {2, 3}, {3, 5}, {3, 4}, {5, 7}, {4, 8}}), 5u);
  // A long request spanning a chain of short ones does not shorten the chain.
  EXPECT_EQ(LongestSequentialChain({{0, 100}, {0, 1}, {1, 2}, {2, 3}, {3, 4}}), 4u);
  // Overlapping by one tick is not sequential.
  EXPECT_EQ(LongestSequentialChain({{0, 10}, {5, 20}, {8, 30}}), 1u);
}

class StubTransport : public HttpTransport {
 public:
  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    HttpResponse r;
    r.status = 200;
    if (request.body_sink) {
      HOIST_RETURN_IF_ERROR(request.body_sink("abcde"));
    } else {
      r.body = "xyz";
    }
    return r;
  }
};

TEST(RequestLogTest, TransportRecordsEveryRequestAndItsBytes) {
  auto log = std::make_shared<RequestLog>();
  auto transport = NewLoggingTransport(std::make_shared<StubTransport>(), log);
  HttpRequest plain;
  plain.url = "http://127.0.0.1:1/v2/";
  ASSERT_TRUE(transport->RoundTrip(plain));
  std::string sunk;
  HttpRequest streamed;
  streamed.url = "http://127.0.0.1:1/v2/x/blobs/sha256:00";
  streamed.body_sink = [&sunk](std::string_view chunk) -> Status {
    sunk.append(chunk);
    return Ok();
  };
  ASSERT_TRUE(transport->RoundTrip(streamed));
  EXPECT_EQ(sunk, "abcde");
  RequestSummary s = log->Summary();
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.sequential, 2u);
  EXPECT_EQ(s.body_bytes, 8u);
  log->Stop();
  ASSERT_TRUE(transport->RoundTrip(plain));
  EXPECT_EQ(log->Summary().requests, 2u);
  log->Reset();
  EXPECT_EQ(log->Summary().requests, 0u);
  {
    UnrecordedRequests unrecorded;  // this thread's requests are not counted meanwhile
    ASSERT_TRUE(transport->RoundTrip(plain));
  }
  EXPECT_EQ(log->Summary().requests, 0u);
  ASSERT_TRUE(transport->RoundTrip(plain));
  EXPECT_EQ(log->Summary().requests, 1u);
}

}  // namespace
}  // namespace hoist
