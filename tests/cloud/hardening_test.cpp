// Hostile and heavy clients against an in-process server: requests built to crash
// the service, stall it or turn a 4xx into a 500. Each test checks the answer (status and
// JSON error body) and that the server serves on afterwards.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "cloud/artifact_signature.h"
#include "cloud/customization.h"
#include "cloud/customization_client.h"
#include "cloud/metrics.h"
#include "common/checksum.h"
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

  explicit CustomizationHarness(std::string artifact_key = "") {
    root = fs::temp_directory_path() /
           ("edgefm-hardening-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(root);
    fm = make_linear_foundation_model(testing::model_options(), testing::kClasses);
    CustomizationOptions options = customization_default_options();
    options.root = root;
    options.sample_shape = {1, 28, 28};
    options.min_samples = 1;
    options.artifact_key = std::move(artifact_key);
    service = std::make_unique<CustomizationService>(
        options, [](const CustomizationJob& job, const JobProgress&) -> json {
          std::ofstream(job.output, std::ios::binary) << "weights of " << job.id;
          return {{"arch", "tiny-cnn"}};
        });
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
  ClientOptions client_options(const std::string& artifact_key) const {
    ClientOptions o = client_default_options();
    o.url = server->url();
    o.token = kToken;
    o.read_timeout_s = 20;
    o.artifact_key = artifact_key;
    return o;
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
// Only samples whose labels contain `having` (e.g. endpoint="metrics") when it is given.
double counter_total(const std::string& text, const std::string& name, const std::string& having = "") {
  double total = 0;
  size_t at = 0;
  while ((at = text.find("\n" + name + "{", at)) != std::string::npos) {
    size_t end = text.find('\n', at + 1);
    std::string line = text.substr(at + 1, end - at - 1);
    if (having.empty() || line.find(having) != std::string::npos) {
      total += std::stod(line.substr(line.rfind(' ') + 1));
    }
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
  for (const std::string& garbage : {std::string("GARBAGE\r\n\r\n"), std::string("GET /v2 HTTP/1.1\r\nno colon here\r\n\r\n")}) {
    std::string answer = raw_exchange(port, garbage);
    int status = status_of(answer);
    EXPECT_GE(status, 400) << answer;
    EXPECT_LT(status, 500) << answer;
    ++answers;
  }
  // httplib counts an answer (its logger) just after writing it: allow the last one a moment.
  std::string text;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto metrics = s.raw(false)->Get("/metrics");
    ASSERT_TRUE(metrics);
    text = metrics->body;
    // Earlier /metrics answers are counted too.
    if (counter_total(text, kMetricResponses) >= answers + attempt) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double counted = counter_total(text, kMetricResponses);
  const double metrics_answers = counter_total(text, kMetricResponses, "endpoint=\"metrics\"");
  EXPECT_EQ(counted - metrics_answers, answers) << text;
  EXPECT_EQ(text.find("code=\"500\""), std::string::npos) << text;
}

// ---- raw connections ---------------------------------------------------------------------

// A client socket for requests no HTTP library would send.
class RawConnection {
 public:
  struct Answer {
    int status = 0;  // 0: no answer in time
    std::string head, body;
    std::string header(const std::string& name) const {
      auto at = head.find("\r\n" + name + ": ");
      if (at == std::string::npos) return "";
      at += name.size() + 4;
      return head.substr(at, head.find("\r\n", at) - at);
    }
  };

  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }

  // False once the server closed or reset the connection.
  bool send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // One answer (its head, and its body by Content-Length), or status 0 after `timeout_s`.
  Answer read_answer(int timeout_s = 5) {
    timeval timeout{timeout_s, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    Answer answer;
    for (;;) {
      size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buffer_.substr(0, end + 2);
        size_t length = 0;
        auto at = head.find("Content-Length: ");
        if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
        if (buffer_.size() >= end + 4 + length) {
          answer.head = head;
          answer.body = buffer_.substr(end + 4, length);
          buffer_.erase(0, end + 4 + length);
          if (head.rfind("HTTP/1.1 ", 0) == 0) answer.status = std::stoi(head.substr(9, 3));
          return answer;
        }
      }
      char chunk[8192];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return answer;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string error_in(const RawConnection::Answer& answer) {
  json body = json::parse(answer.body, nullptr, false);
  EXPECT_TRUE(body.is_object() && body.contains("error")) << answer.head << answer.body;
  return body.is_object() ? body.value("error", "") : "";
}

const std::string kInferHead = "POST /v2/models/fm/infer HTTP/1.1\r\nHost: test\r\n"
                               "Content-Type: application/json\r\n";
const std::string kAuth = std::string("Authorization: Bearer ") + kToken + "\r\n";

// ---- 3. body limits and the order of checks -------------------------------------------------

// One chunk of a chunked body.
std::string chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

TEST(Hardening, AChunkedBodyWithoutTokenIsRefusedBeforeItIsRead) {
  TestServer s;
  for (const std::string path : {"/v2/models/fm/infer", "/v2/nothing"}) {
    RawConnection c(s.server->port());
    ASSERT_TRUE(c.connected());
    // Headers and one chunk; the rest of the (endless) body never comes.
    c.send("POST " + path + " HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" +
           chunk(std::string(64 << 10, ' ')));
    auto answer = c.read_answer();
    EXPECT_EQ(answer.status, path == "/v2/nothing" ? 404 : 401) << path << ": " << answer.head;
    EXPECT_EQ(answer.header("Connection"), "close") << answer.head;
    error_in(answer);
  }
  expect_serving(*s.raw());
}

TEST(Hardening, AChunkedBodyBeyondTheLimitIs413) {
  TestServer s;  // limit 64 KiB
  RawConnection c(s.server->port());
  c.send(kInferHead + kAuth + "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 64; ++i) {
    if (!c.send(chunk(std::string(16 << 10, ' ')))) break;  // 1 MiB in all, if the server reads
  }
  auto answer = c.read_answer();
  EXPECT_EQ(answer.status, 413) << answer.head << answer.body;
  EXPECT_NE(error_in(answer).find("exceeds the limit of 65536 bytes"), std::string::npos);
  // A chunked body within the limit is fine.
  RawConnection ok(s.server->port());
  const std::string body = one_image_json();
  ok.send(kInferHead + kAuth + "Transfer-Encoding: chunked\r\n\r\n" + chunk(body.substr(0, 100)) +
          chunk(body.substr(100)) + "0\r\n\r\n");
  EXPECT_EQ(ok.read_answer().status, 200);
  expect_serving(*s.raw());
  EXPECT_NE(s.server->metrics_text().find(R"(code="413")"), std::string::npos);
}

TEST(Hardening, APostWithoutLengthGets411) {
  TestServer s;
  RawConnection c(s.server->port());
  c.send(kInferHead + kAuth + "\r\n" + one_image_json());  // no Content-Length, no chunks
  auto answer = c.read_answer();
  EXPECT_EQ(answer.status, 411) << answer.head;
  EXPECT_NE(error_in(answer).find("needs a Content-Length"), std::string::npos);
  expect_serving(*s.raw());
}

TEST(Hardening, AmbiguousBodyFramingIs400) {
  TestServer s;
  const std::string body = one_image_json();
  struct Case {
    std::string headers, message;
  };
  const std::vector<Case> cases = {
      {"Content-Length: " + std::to_string(body.size()) + "\r\nContent-Length: 2\r\n",
       "conflicting Content-Length headers"},
      {"Content-Length: " + std::to_string(body.size()) + "\r\nTransfer-Encoding: chunked\r\n",
       "both Transfer-Encoding and Content-Length"},
      {"Transfer-Encoding: gzip, chunked\r\n", "only 'chunked' is supported"},
      {"Content-Length: -1\r\n", "Content-Length: expected a non-negative integer"},
  };
  for (const auto& c : cases) {
    RawConnection raw(s.server->port());
    raw.send(kInferHead + kAuth + c.headers + "\r\n" + body);
    auto answer = raw.read_answer();
    EXPECT_EQ(answer.status, 400) << c.headers << answer.head;
    EXPECT_NE(error_in(answer).find(c.message), std::string::npos) << c.headers;
  }
  // The same length twice is one length.
  RawConnection twice(s.server->port());
  twice.send(kInferHead + kAuth + "Content-Length: " + std::to_string(body.size()) +
             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(twice.read_answer().status, 200);
  expect_serving(*s.raw());
}

TEST(Hardening, BearerSchemeIsCaseInsensitive) {
  TestServer s;
  for (const std::string scheme : {"bearer", "BEARER", "Bearer ", "bEaReR"}) {
    auto client = s.raw(false);
    client->set_default_headers({{"Authorization", scheme + " " + kToken}});
    auto res = client->Post("/v2/models/fm/infer", one_image_json(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << "'" << scheme << "': " << res->body;
  }
  for (const std::string& value : {std::string("Basic ") + kToken, std::string("Bearer"), std::string("bearer x"),
                                  std::string("Bearer") + kToken}) {
    auto client = s.raw(false);
    client->set_default_headers({{"Authorization", value}});
    auto res = client->Get("/v2");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401) << value;
  }
}

// ---- 4. slow and many clients ---------------------------------------------------------------

// Connections that send a request head a byte at a time, forever (until destroyed).
class SlowClients {
 public:
  SlowClients(int port, int count) {
    for (int i = 0; i < count; ++i) connections_.push_back(std::make_unique<RawConnection>(port));
    thread_ = std::thread([this] {
      const std::string head = "GET /v2/health/live HTTP/1.1\r\nHost: test\r\nX-Slow: ";
      size_t at = 0;
      while (!stop_) {
        for (auto& c : connections_) c->send(std::string(1, at < head.size() ? head[at] : 'x'));
        ++at;
        for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  ~SlowClients() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::vector<std::unique_ptr<RawConnection>> connections_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Hardening, SlowHeaderClientsDoNotStallOthers) {
  ServerOptions options = testing::test_options();
  options.threads = 4;
  TestServer s(options);
  SlowClients slow(s.server->port(), 24);  // six times the workers
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto client = s.raw();
  client->set_read_timeout(5, 0);
  auto live = client->Get("/v2/health/live");
  ASSERT_TRUE(live) << httplib::to_string(live.error());
  EXPECT_EQ(live->status, 200);
  expect_serving(*client);
  auto metadata = client->Get("/v2/models/fm");
  ASSERT_TRUE(metadata) << httplib::to_string(metadata.error());
  EXPECT_EQ(metadata->status, 200);
}

TEST(Hardening, IdleKeepAliveConnectionsDoNotHoldWorkers) {
  ServerOptions options = testing::test_options();
  options.threads = 2;
  options.keep_alive_timeout_s = 60;
  TestServer s(options);
  std::vector<std::unique_ptr<httplib::Client>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(s.raw());
    idle.back()->set_keep_alive(true);
    auto res = idle.back()->Get("/v2");
    ASSERT_TRUE(res);
  }
  auto client = s.raw();
  client->set_read_timeout(5, 0);
  expect_serving(*client);
  for (auto& c : idle) expect_serving(*c);  // the idle ones still work too
}

TEST(Hardening, AnIncompleteRequestHeadGets408) {
  ServerOptions options = testing::test_options();
  options.header_timeout_s = 1;
  TestServer s(options);
  RawConnection c(s.server->port());
  c.send("GET /v2/health/live HTTP/1.1\r\nHost: te");
  auto answer = c.read_answer(10);
  EXPECT_EQ(answer.status, 408) << answer.head;
  error_in(answer);
  expect_serving(*s.raw());
}

TEST(Hardening, OverloadIsShedWith503AndHealthStillAnswers) {
  ServerOptions options = testing::test_options();
  options.threads = 1;
  options.max_queued_requests = 1;
  options.io_timeout_s = 3;
  TestServer s(options);
  // The one worker waits for a body that does not come.
  RawConnection stuck(s.server->port());
  stuck.send(kInferHead + kAuth + "Content-Length: 1000\r\n\r\n{");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // One request may wait for it...
  RawConnection queued(s.server->port());
  const std::string body = one_image_json();
  queued.send(kInferHead + kAuth + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // ...the next one is refused at once.
  RawConnection refused(s.server->port());
  refused.send(kInferHead + kAuth + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  auto answer = refused.read_answer(2);
  EXPECT_EQ(answer.status, 503) << answer.head;
  EXPECT_EQ(answer.header("Retry-After"), "1");
  EXPECT_NE(error_in(answer).find("server busy"), std::string::npos);
  // Health checks have their own lane.
  RawConnection health(s.server->port());
  health.send("GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(health.read_answer(2).status, 200);
  // The stuck body times out (400) and the queued request is answered.
  EXPECT_EQ(stuck.read_answer(10).status, 400);
  EXPECT_EQ(queued.read_answer(10).status, 200);
  const std::string metrics = s.server->metrics_text();
  EXPECT_TRUE(metrics.find(R"(edgefm_http_responses_total{endpoint="unrouted",code="503"} 1)") != std::string::npos ||
              metrics.find(R"(edgefm_http_responses_total{code="503",endpoint="unrouted"} 1)") != std::string::npos)
      << metrics;
}

TEST(Hardening, PipelinedRequestsAreAnsweredInOrder) {
  TestServer s;
  RawConnection c(s.server->port());
  const std::string body = one_image_json();
  const std::string infer =
      kInferHead + kAuth + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  // Three requests in one write: the server reads past the first and must keep the rest.
  c.send(infer + "GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n" + infer);
  auto first = c.read_answer();
  auto second = c.read_answer();
  auto third = c.read_answer();
  EXPECT_EQ(first.status, 200) << first.head;
  EXPECT_EQ(second.status, 200) << second.head;
  EXPECT_NE(second.body.find("\"ready\""), std::string::npos) << second.body;
  EXPECT_EQ(third.status, 200) << third.head;
  EXPECT_NE(third.body.find("\"model_name\""), std::string::npos);
}

TEST(Hardening, ConnectionsBeyondTheLimitAreRefused) {
  ServerOptions options = testing::test_options();
  options.max_connections = 3;
  TestServer s(options);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<RawConnection>(s.server->port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawConnection extra(s.server->port());
  extra.send("GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n");
  auto answer = extra.read_answer();
  EXPECT_EQ(answer.status, 503) << answer.head;
  EXPECT_NE(error_in(answer).find("too many connections"), std::string::npos);
  held.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  expect_serving(*s.raw());
}

// ---- tampered artifacts -------------------------------------------------------------------

// Runs one job for device "cam"; returns the version it published.
int publish_one(CustomizationHarness& h) {
  CustomizationClient client(h.client_options(""));
  client.upload_samples("cam", {std::string(784, 'a')}, {1, 28, 28});
  json job = client.submit_job("cam", json::object());
  json record = client.wait_for_job(job["id"], 20, 0.01);
  EXPECT_EQ(record["state"], "done") << record.dump();
  return record["result"].value("version", 0);
}

std::string download_error(CustomizationClient& client, int version, const fs::path& out) {
  try {
    client.download_artifact("cam", version, out);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Hardening, ATamperedArtifactWithAMatchingSha256IsRefused) {
  CustomizationHarness h("service-key");
  const int version = publish_one(h);
  ASSERT_GT(version, 0);
  const fs::path dir = h.root / "cam" / "artifacts";
  const fs::path artifact = dir / ("v" + std::to_string(version) + ".pt");
  const fs::path metadata = dir / ("v" + std::to_string(version) + ".json");
  json meta = read_json_file(metadata);
  ASSERT_TRUE(meta.contains("signature")) << meta.dump();
  EXPECT_EQ(meta["signature"]["alg"], "HMAC-SHA256");

  const fs::path out = h.root / "edge" / "model.pt";
  CustomizationClient edge(h.client_options("service-key"));
  EXPECT_EQ(download_error(edge, version, out), "");
  EXPECT_EQ(file_bytes(out), file_bytes(artifact));
  fs::remove(out);

  CustomizationClient stranger(h.client_options("another-key"));
  EXPECT_NE(download_error(stranger, version, out).find("does not verify"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));

  // One flipped byte, and the published SHA-256 updated to match: the hash alone passes it.
  std::string bytes = file_bytes(artifact);
  bytes[3] = static_cast<char>(bytes[3] ^ 1);
  std::ofstream(artifact, std::ios::binary | std::ios::trunc) << bytes;
  meta["sha256"] = sha256_hex(bytes);
  write_json_file(metadata, meta);
  const std::string message = download_error(edge, version, out);
  EXPECT_NE(message.find("artifact cam v" + std::to_string(version) + ": artifact signature: does not verify"),
            std::string::npos) << message;
  EXPECT_FALSE(fs::exists(out));
  CustomizationClient unkeyed(h.client_options(""));
  EXPECT_EQ(download_error(unkeyed, version, out), "");  // without a key: installed
}

TEST(Hardening, AnUnsignedArtifactIsRefusedByAKeyedEdge) {
  CustomizationHarness h;  // the service signs nothing
  const int version = publish_one(h);
  CustomizationClient edge(h.client_options("edge-key"));
  const fs::path out = h.root / "edge" / "model.pt";
  EXPECT_NE(download_error(edge, version, out).find("unsigned artifact"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));
}

TEST(ArtifactSignature, CoversDeviceVersionArchSizeAndContent) {
  const json meta = {{"device", "cam"}, {"version", 3}, {"arch", "tiny-cnn"}, {"size", 1234},
                     {"sha256", std::string(64, 'a')}, {"created_unix", 1.5}};
  json signed_meta = meta;
  signed_meta["signature"] = artifact_signature(meta, "k");
  EXPECT_NO_THROW(verify_artifact_signature(signed_meta, "k"));
  EXPECT_THROW(verify_artifact_signature(signed_meta, "K"), Error);
  EXPECT_THROW(verify_artifact_signature(meta, "k"), Error);
  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"device", "cam2"}, {"version", 2}, {"arch", "big-cnn"}, {"size", 1235},
           {"sha256", std::string(64, 'b')}}) {
    json changed = signed_meta;
    changed[field] = value;
    EXPECT_THROW(verify_artifact_signature(changed, "k"), Error) << field;
  }
  json other_alg = signed_meta;
  other_alg["signature"]["alg"] = "none";
  EXPECT_THROW(verify_artifact_signature(other_alg, "k"), Error);
  // Fields outside the signed text (the creation time, a summary) may change.
  json untouched = signed_meta;
  untouched["created_unix"] = 2.5;
  EXPECT_NO_THROW(verify_artifact_signature(untouched, "k"));
}

}  // namespace
}  // namespace edgefm::cloud
