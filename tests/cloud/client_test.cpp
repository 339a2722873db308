// The edge's OIP client: errors carry the HTTP status and the server's message; connection
// failures are retried a bounded number of times, HTTP errors and timeouts are not; a
// restarted server is reached again through the same client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test_server.h"

namespace edgefm::cloud {
namespace {

using testing::TestServer;

// A 127.0.0.1 port with a bound socket that does not listen: connecting is refused.
struct RefusingPort {
  int fd = -1;
  int port = 0;
  RefusingPort() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t length = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
    port = ntohs(addr.sin_port);
  }
  ~RefusingPort() { ::close(fd); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

InferRequest one_image() {
  InferRequest request;
  request.inputs.push_back(Tensor::from_uint8s("images", {1, 28, 28}, testing::test_pixels(1)));
  request.inputs.back().binary = true;
  return request;
}

TEST(OipClient, ConnectionFailuresAreRetriedThenReported) {
  RefusingPort refusing;
  ClientOptions options = client_default_options();
  options.url = refusing.url();
  options.max_retries = 2;
  options.retry_backoff_s = 0.001;
  OipClient client(options);
  CallStats stats;
  try {
    client.infer("fm", one_image(), &stats);
    FAIL() << "expected a RequestError";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 0);
    EXPECT_TRUE(e.no_answer());
    EXPECT_NE(std::string(e.what()).find("no answer"), std::string::npos) << e.what();
  }
  EXPECT_EQ(stats.attempts, 3);
  EXPECT_FALSE(client.live());
  EXPECT_FALSE(client.ready());
  EXPECT_THROW(client.wait_until_ready(0.1), RequestError);
}

TEST(OipClient, HttpErrorsAreNotRetriedAndCarryTheServersMessage) {
  TestServer s;
  OipClient client(s.client_options());
  CallStats stats;
  try {
    client.infer("nope", one_image(), &stats);
    FAIL() << "expected a RequestError";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.server_message(), "unknown model 'nope'; this server has 'fm', 'text'");
    EXPECT_EQ(std::string(e.what()),
              "POST " + s.url() + "/v2/models/nope/infer: HTTP 404: unknown model 'nope'; this "
              "server has 'fm', 'text'");
  }
  EXPECT_EQ(stats.attempts, 1);

  auto options = s.client_options();
  options.token = "wrong";
  OipClient unauthorised(options);
  try {
    unauthorised.class_names();
    FAIL() << "expected a RequestError";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 401);
  }
  EXPECT_TRUE(unauthorised.live());  // health needs no token
  EXPECT_FALSE(unauthorised.ready());  // model readiness does
}

TEST(OipClient, ReadTimeoutIsNotRetried) {
  TestServer s(testing::test_options(), /*call_cost_us=*/2'000'000);
  auto options = s.client_options();
  options.read_timeout_s = 0.3;
  options.max_retries = 3;
  OipClient client(options);
  CallStats stats;
  EXPECT_THROW(client.infer("fm", one_image(), &stats), RequestError);
  EXPECT_EQ(stats.attempts, 1);
}

TEST(OipClient, ReadyAndMetadata) {
  TestServer s;
  OipClient client(s.client_options());
  EXPECT_TRUE(client.live());
  EXPECT_TRUE(client.ready());
  client.wait_until_ready(5);
  EXPECT_EQ(client.server_metadata()["name"], "edgefm");
  EXPECT_EQ(client.model_metadata("fm")["parameters"]["embedding_dim"], 16);
}

TEST(OipClient, ReachesARestartedServerOnTheSamePort) {
  auto first = std::make_unique<TestServer>();
  const int port = first->server->port();
  auto options = first->client_options();
  options.retry_backoff_s = 0.01;
  OipClient client(options);
  auto pixels = testing::test_pixels(1);
  auto before = client.infer_images_u8(pixels.data(), 1, {1, 28, 28});
  first.reset();  // the kept-alive connection dies with the server

  auto server_options = testing::test_options();
  server_options.port = port;
  TestServer second(server_options);
  ASSERT_EQ(second.server->port(), port);
  auto after = client.infer_images_u8(pixels.data(), 1, {1, 28, 28});
  EXPECT_EQ(after.embeddings, before.embeddings);
  EXPECT_LE(after.call.attempts, 3);
}

TEST(OipClient, RejectsAnUnusableUrl) {
  ClientOptions options = client_default_options();
  options.url = "ftp://example";
  EXPECT_THROW(OipClient{options}, Error);
}

}  // namespace
}  // namespace edgefm::cloud
