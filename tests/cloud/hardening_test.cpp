// Hostile and heavy clients against an in-process server (issue 11): requests built to crash
// the service, stall it or turn a 4xx into a 500. Each test checks the answer (status and
// JSON error body) and that the server serves on afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <httplib.h>

#include "cloud/customization.h"
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

}  // namespace
}  // namespace edgefm::cloud
