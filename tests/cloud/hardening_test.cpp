// Hostile and heavy clients against an in-process server (issue 11): requests built to crash
// the service, stall it or turn a 4xx into a 500. Each test checks the answer (status and
// JSON error body) and that the server serves on afterwards.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <httplib.h>

#include "cloud/customization.h"
#include "cloud/metrics.h"
#include "cloud/oip.h"
#include "test_server.h"

namespace edgefm::cloud {
namespace {

namespace fs = std::filesystem;
using testing::kToken;
using testing::TestServer;

// Test servers here take bodies up to 1 MiB, so a 200 KB nesting bomb reaches the parser.
ServerOptions roomy_options() {
  ServerOptions o = testing::test_options();
  o.max_request_bytes = 1 << 20;
  return o;
}

std::string one_image_json() {
  InferRequest request;
  request.inputs.push_back(Tensor::from_uint8s("images", {1, 1, 28, 28}, testing::test_pixels(1)));
  return encode_request(request).body;
}

void expect_serving(httplib::Client& client) {
  auto res = client.Post("/v2/models/fm/infer", one_image_json(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200) << res->body;
}

// The {"error": ...} of an answer; fails the test when the body is not that.
std::string error_of(const httplib::Result& res) {
  if (!res) return "(no answer: " + httplib::to_string(res.error()) + ")";
  json body = json::parse(res->body, nullptr, false);
  EXPECT_TRUE(body.is_object() && body.contains("error") && body["error"].is_string())
      << res->status << " " << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  return body.is_object() ? body.value("error", "") : "";
}

std::string deep_arrays(int depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

constexpr int kBomb = 100000;  // levels; ~200 KB of brackets

// A customization service beside the OIP endpoints, with a runner that is never reached.
struct CustomizationHarness {
  fs::path root;
  models::FoundationModel fm;
  std::unique_ptr<CustomizationService> service;
  std::unique_ptr<CloudServer> server;

  CustomizationHarness() {
    root = fs::temp_directory_path() /
           ("edgefm-hardening-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(root);
    fm = make_linear_foundation_model(testing::model_options(), testing::kClasses);
    CustomizationOptions options = customization_default_options();
    options.root = root;
    options.sample_shape = {1, 28, 28};
    options.min_samples = 1;
    service = std::make_unique<CustomizationService>(
        options, [](const CustomizationJob&, const JobProgress&) -> json { return {{"arch", "x"}}; });
    server = std::make_unique<CloudServer>(fm, roomy_options(),
                                           std::vector<ServerExtension>{service->extension()});
  }
  ~CustomizationHarness() {
    server->stop();
    service->stop();
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  static std::atomic<int>& counter() {
    static std::atomic<int> n{0};
    return n;
  }
  std::unique_ptr<httplib::Client> raw() const {
    auto c = std::make_unique<httplib::Client>(server->url());
    c->set_read_timeout(20, 0);
    c->set_bearer_token_auth(kToken);
    return c;
  }
};

// ---- 1. nesting depth -------------------------------------------------------------------

TEST(Hardening, DeeplyNestedInferRequestsAre400) {
  TestServer s(roomy_options());
  auto client = s.raw();
  const std::string bomb = deep_arrays(kBomb);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"data", R"({"inputs":[{"name":"images","shape":[1],"datatype":"FP32","data":)" + bomb + "}]}"},
      {"id", R"({"id":)" + bomb + R"(,"inputs":[]})"},
      {"parameters", R"({"parameters":{"p":)" + bomb + R"(},"inputs":[]})"},
      {"outputs", R"({"inputs":[],"outputs":[{"name":"embedding","parameters":)" + bomb + "}]}"},
  };
  for (const auto& [where, body] : cases) {
    for (const char* model : {"fm", "text"}) {
      auto res = client->Post((std::string("/v2/models/") + model + "/infer").c_str(), body,
                              "application/json");
      ASSERT_TRUE(res) << where << ": " << httplib::to_string(res.error());
      EXPECT_EQ(res->status, 400) << where;
      EXPECT_NE(error_of(res).find("nested deeper than 64 levels"), std::string::npos) << where;
    }
  }
  // Nesting within the limit still works: a [1,1,28,28] image as nested arrays.
  json image = json::array();
  image.push_back(json::array());
  image[0].push_back(json::array());
  for (int r = 0; r < 28; ++r) image[0][0].push_back(std::vector<int>(28, 1));
  json body = {{"inputs", {{{"name", "images"}, {"shape", {1, 1, 28, 28}}, {"datatype", "UINT8"},
                            {"data", image}}}}};
  auto res = client->Post("/v2/models/fm/infer", body.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  expect_serving(*client);
}

TEST(Hardening, DeeplyNestedCustomizationBodiesAre400) {
  CustomizationHarness h;
  auto client = h.raw();
  // Metadata: one BYTES element holding the bomb beside a valid image.
  json upload = {{"inputs",
                  {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 28, 28}},
                    {"data", std::vector<int>(784, 3)}},
                   {{"name", "metadata"}, {"datatype", "BYTES"}, {"shape", {1}},
                    {"data", {"{\"m\":" + deep_arrays(kBomb) + "}"}}}}}};
  auto res = client->Post("/v2/customization/devices/cam/samples", upload.dump(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(error_of(res).find("nested deeper than 64 levels"), std::string::npos);

  // A job request whose profile is the bomb (after a valid upload, so only depth is wrong).
  upload["inputs"].erase(1);
  res = client->Post("/v2/customization/devices/cam/samples", upload.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  res = client->Post("/v2/customization/devices/cam/jobs", R"({"profile":)" + deep_arrays(kBomb) + "}",
                     "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(error_of(res).find("nested deeper than 64 levels"), std::string::npos);
  EXPECT_EQ(h.service->jobs("cam").size(), 0u);
  expect_serving(*client);
}

// ---- 2. error text that cannot throw, every malformed request a 4xx, every answer counted --

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD, what an invalid byte becomes

TEST(Hardening, InvalidUtf8InPathsGetsA4xxJsonError) {
  CustomizationHarness h;
  auto client = h.raw();
  struct Case {
    std::string method, path;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET", "/v2/models/%FF", 404},
      {"GET", "/v2/models/%FF/ready", 404},
      {"GET", "/v2/models/fm/versions/%FE%FF", 404},
      {"POST", "/v2/models/%FF/infer", 404},
      {"GET", "/v2/%FF/nothing", 404},
      {"GET", "/v2/customization/devices/%FF", 400},
      {"GET", "/v2/customization/jobs/%FF", 404},
      {"DELETE", "/v2/customization/jobs/%FF", 404},
      {"GET", "/v2/customization/devices/cam/artifacts/%FF", 400},
  };
  for (const auto& c : cases) {
    auto res = c.method == "GET"    ? client->Get(c.path.c_str())
               : c.method == "POST" ? client->Post(c.path.c_str(), one_image_json(), "application/json")
                                    : client->Delete(c.path.c_str());
    ASSERT_TRUE(res) << c.path << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, c.status) << c.method << " " << c.path << ": " << res->body;
    EXPECT_NE(error_of(res).find(kReplacement), std::string::npos) << c.path << ": " << res->body;
  }
  expect_serving(*client);
  expect_serving(*h.raw());
}

TEST(Hardening, InvalidUtf8InABytesTensorGetsA400) {
  TestServer s;
  auto client = s.raw();
  InferRequest request;
  request.inputs.push_back(Tensor::from_strings("prompts", {1}, {"\xff\xfe spaceship"}));
  request.inputs.back().binary = true;
  EncodedBody encoded = encode_request(request);
  httplib::Headers headers = {{kHeaderContentLength, std::to_string(*encoded.json_size)}};
  auto res = client->Post("/v2/models/text/infer", headers, encoded.body, "application/octet-stream");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_NE(error_of(res).find(kReplacement + kReplacement + " spaceship"), std::string::npos);
  expect_serving(*client);
}

TEST(Hardening, NumbersOutOfRangeAre400) {
  TestServer s;
  auto client = s.raw();
  for (const std::string number : {"1e400", "-1e400", "1e39"}) {
    const std::string body =
        R"({"inputs":[{"name":"images","shape":[1],"datatype":"FP32","data":[)" + number + "]}]}";
    auto res = client->Post("/v2/models/fm/infer", body, "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 400) << number << ": " << res->body;
    const std::string message = error_of(res);
    EXPECT_TRUE(message.find("number overflow parsing '" + number + "'") != std::string::npos ||
                message.find("expected a number within the FP32 range") != std::string::npos)
        << message;
  }
  expect_serving(*client);
}

// Sends bytes on a fresh connection and returns what came back until the server closed it
// (or 10 s passed).
std::string raw_exchange(int port, const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return "(connect failed)";
  }
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string answer;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
    // One answer is enough: stop at the end of its body when the length is known.
    auto head_end = answer.find("\r\n\r\n");
    auto length_at = answer.find("Content-Length: ");
    if (head_end != std::string::npos && length_at != std::string::npos && length_at < head_end) {
      size_t length = std::stoul(answer.substr(length_at + 16));
      if (answer.size() >= head_end + 4 + length) break;
    }
  }
  ::close(fd);
  return answer;
}

int status_of(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

// The sum of a counter's samples in a Prometheus text exposition.
double counter_total(const std::string& text, const std::string& name) {
  double total = 0;
  size_t at = 0;
  while ((at = text.find("\n" + name + "{", at)) != std::string::npos) {
    size_t end = text.find('\n', at + 1);
    std::string line = text.substr(at + 1, end - at - 1);
    total += std::stod(line.substr(line.rfind(' ') + 1));
    at = end;
  }
  return total;
}

TEST(Hardening, MalformedRequestsAreNever500AndEveryAnswerIsCounted) {
  TestServer s(roomy_options());
  auto client = s.raw();
  int answers = 0;
  auto count = [&](const httplib::Result& res, const std::string& what) {
    ASSERT_TRUE(res) << what;
    EXPECT_GE(res->status, 200) << what;
    EXPECT_LT(res->status, 500) << what << ": " << res->body;
    ++answers;
  };
  count(client->Get("/v2"), "server metadata");
  count(client->Get("/v2/health/live"), "live");
  count(client->Get("/v2/models/%FF"), "bad UTF-8 model");
  count(client->Get("/nothing/%FF"), "bad UTF-8 unknown path");
  count(client->Post("/v2/models/fm/infer", "{\"id\":\"\xff\"}", "application/json"), "bad UTF-8 JSON");
  count(client->Post("/v2/models/fm/infer", R"({"inputs":[{"name":"images","shape":[1],"datatype":"FP32","data":[1e400]}]})",
                     "application/json"), "1e400");
  count(client->Post("/v2/models/fm/infer", "[" + deep_arrays(kBomb) + "]", "application/json"), "bomb");
  count(client->Post("/v2/models/fm/infer", one_image_json(), "application/json"), "valid");
  // Requests the HTTP layer answers itself: a broken request line.
  const int port = s.server->port();
  for (const std::string garbage : {std::string("GARBAGE\r\n\r\n"), std::string("GET /v2 HTTP/1.1\r\nno colon here\r\n\r\n")}) {
    std::string answer = raw_exchange(port, garbage);
    int status = status_of(answer);
    EXPECT_GE(status, 400) << answer;
    EXPECT_LT(status, 500) << answer;
    ++answers;
  }
  auto metrics = s.raw(false)->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(counter_total(metrics->body, kMetricResponses), answers) << metrics->body;
  EXPECT_EQ(metrics->body.find("code=\"500\""), std::string::npos) << metrics->body;
}

}  // namespace
}  // namespace edgefm::cloud
