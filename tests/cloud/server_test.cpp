// Protocol tests against a running in-process server: every endpoint, every error case
// (answered with its status and an {"error": ...} body, the server serving on afterwards),
// JSON and binary round trips, concurrent clients through the batcher, metrics, and a
// graceful stop.
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "cloud/oip.h"
#include "test_server.h"

namespace edgefm::cloud {
namespace {

using testing::kClasses;
using testing::kToken;
using testing::TestServer;

std::string error_message(const httplib::Result& res) {
  auto body = json::parse(res->body);
  EXPECT_TRUE(body.is_object() && body.contains("error")) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  return body.value("error", "");
}

// A valid JSON inference of one image, for checking the server still serves.
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

// The local answer: embed with the stand-in itself and classify against the pool.
struct Expected {
  std::vector<float> embedding;
  int64_t index;
  float margin;
};
Expected expected_for(const models::FoundationModel& fm, const float* image) {
  Expected e;
  e.embedding.resize(static_cast<size_t>(fm.image->embedding_dim()));
  fm.image->embed(image, 1, e.embedding.data());
  std::vector<double> cos;
  for (size_t c = 0; c < fm.pool.size(); ++c) {
    double s = 0;
    for (int d = 0; d < fm.pool.dim(); ++d) s += double{e.embedding[d]} * fm.pool.vector(c)[d];
    cos.push_back(s);
  }
  auto best = std::max_element(cos.begin(), cos.end()) - cos.begin();
  double second = -2;
  for (size_t c = 0; c < cos.size(); ++c) {
    if (static_cast<long>(c) != best) second = std::max(second, cos[c]);
  }
  e.index = best;
  e.margin = static_cast<float>(cos[best] - second);
  return e;
}

// ---- metadata and health ----------------------------------------------------------------

TEST(CloudServer, ServerMetadata) {
  TestServer s;
  auto res = s.raw()->Get("/v2");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  auto body = json::parse(res->body);
  EXPECT_EQ(body["name"], "edgefm");
  EXPECT_EQ(body["extensions"], json::array({"binary_tensor_data"}));
}

TEST(CloudServer, HealthNeedsNoToken) {
  TestServer s;
  auto client = s.raw(false);
  auto live = client->Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  EXPECT_EQ(json::parse(live->body)["live"], true);
  auto ready = client->Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(json::parse(ready->body)["ready"], true);
}

TEST(CloudServer, ImageModelMetadata) {
  TestServer s;
  auto res = s.raw()->Get("/v2/models/fm");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto body = json::parse(res->body);
  EXPECT_EQ(body["name"], "fm");
  EXPECT_EQ(body["versions"], json::array({"1"}));
  EXPECT_EQ(body["inputs"][0]["name"], "images");
  EXPECT_EQ(body["inputs"][0]["shape"], json::array({-1, 1, 28, 28}));
  std::vector<std::string> outputs;
  for (const auto& o : body["outputs"]) outputs.push_back(o["name"]);
  EXPECT_EQ(outputs, (std::vector<std::string>{"embedding", "class_index", "class_name", "margin"}));
  EXPECT_EQ(body["outputs"][0]["shape"], json::array({-1, 16}));
  EXPECT_EQ(body["parameters"]["class_names"], kClasses);
  EXPECT_EQ(body["parameters"]["max_batch_size"], 8);
}

TEST(CloudServer, TextModelMetadataListsClasses) {
  TestServer s;
  auto res = s.raw()->Get("/v2/models/text");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto body = json::parse(res->body);
  EXPECT_EQ(body["inputs"][0]["name"], "prompts");
  EXPECT_EQ(body["inputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(body["parameters"]["class_names"], kClasses);
  EXPECT_EQ(body["parameters"]["has_text_encoder"], true);
}

TEST(CloudServer, ModelReadyAndVersions) {
  TestServer s;
  auto client = s.raw();
  for (const char* path : {"/v2/models/fm/ready", "/v2/models/text/ready",
                           "/v2/models/fm/versions/1/ready", "/v2/models/fm/versions/1"}) {
    auto res = client->Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << path;
  }
  auto res = client->Get("/v2/models/fm/versions/2/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(error_message(res), "model 'fm' has no version '2'; it has version 1");
}

TEST(CloudServer, RefusesLimitsThatCannotWork) {
  const auto fm = make_linear_foundation_model(testing::model_options(), kClasses);
  auto expect_refused = [&](const std::function<void(ServerOptions&)>& change,
                            const std::string& field) {
    ServerOptions options = testing::test_options();
    change(options);
    try {
      CloudServer server(fm, options);
      ADD_FAILURE() << field << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  expect_refused([](ServerOptions& o) { o.max_connections = 0; }, "max_connections");
  expect_refused([](ServerOptions& o) { o.max_queued_requests = 0; }, "max_queued_requests");
  expect_refused([](ServerOptions& o) { o.header_timeout_s = 0; }, "header_timeout_s");
  expect_refused([](ServerOptions& o) { o.io_timeout_s = -1; }, "io_timeout_s");
  expect_refused([](ServerOptions& o) { o.request_timeout_s = std::nan(""); }, "request_timeout_s");
  expect_refused([](ServerOptions& o) { o.keep_alive_timeout_s = 0; }, "keep_alive_timeout_s");
}

TEST(CloudServer, RefusesABusyPortAndABadModel) {
  TestServer first;
  auto options = testing::test_options();
  options.port = first.server->port();
  EXPECT_THROW(TestServer{options}, Error);

  auto fm = make_linear_foundation_model(testing::model_options(), kClasses);
  fm.pool = models::TextPool(16);
  EXPECT_THROW(CloudServer(fm, testing::test_options()), Error);
  fm.image = nullptr;
  EXPECT_THROW(CloudServer(fm, testing::test_options()), Error);
  expect_serving(*first.raw());
}

// ---- errors -----------------------------------------------------------------------------

TEST(CloudServer, UnknownModelIs404Everywhere) {
  TestServer s;
  auto client = s.raw();
  for (int k = 0; k < 3; ++k) {
    auto res = k == 0   ? client->Get("/v2/models/gpt")
               : k == 1 ? client->Get("/v2/models/gpt/ready")
                        : client->Post("/v2/models/gpt/infer", one_image_json(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404);
    EXPECT_EQ(error_message(res), "unknown model 'gpt'; this server has 'fm', 'text'");
  }
  expect_serving(*client);
}

TEST(CloudServer, UnknownEndpointIs404Json) {
  TestServer s;
  auto res = s.raw()->Get("/v3/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(error_message(res), "no endpoint GET /v3/nothing");
}

TEST(CloudServer, MissingOrWrongTokenIs401) {
  TestServer s;
  auto anonymous = s.raw(false);
  struct Case {
    const char* method;
    const char* path;
  };
  for (Case c : {Case{"GET", "/v2"}, Case{"GET", "/v2/models/fm"}, Case{"GET", "/v2/models/fm/ready"},
                 Case{"POST", "/v2/models/fm/infer"}, Case{"POST", "/v2/models/text/infer"}}) {
    auto res = std::string(c.method) == "GET"
                   ? anonymous->Get(c.path)
                   : anonymous->Post(c.path, one_image_json(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401) << c.path;
    EXPECT_EQ(error_message(res), "missing 'Authorization: Bearer <token>' header");
    EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer");
  }
  auto wrong = s.raw(false);
  wrong->set_bearer_token_auth("guess");
  auto res = wrong->Post("/v2/models/fm/infer", one_image_json(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(error_message(res), "wrong bearer token");
  auto prefix = s.raw(false);
  prefix->set_bearer_token_auth(std::string(kToken).substr(0, 3));
  res = prefix->Get("/v2");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  expect_serving(*s.raw());
}

TEST(CloudServer, NoTokenConfiguredMeansNoAuth) {
  auto options = testing::test_options();
  options.token.clear();
  TestServer s(options);
  expect_serving(*s.raw(false));
}

struct BadRequest {
  std::string name;
  std::string body;
  std::string header_length;  // the Inference-Header-Content-Length value; empty: none
  int status;
  std::string message;  // exact, or a prefix when it ends with '*'
};

std::vector<BadRequest> bad_requests() {
  const std::string images_u8 =
      R"({"inputs":[{"name":"images","shape":[1,1,28,28],"datatype":"UINT8","parameters":{"binary_data_size":784}}]})";
  const std::string fp32_784 =
      R"({"inputs":[{"name":"images","shape":[1,1,28,28],"datatype":"FP32","parameters":{"binary_data_size":784}}]})";
  std::vector<BadRequest> cases = {
      {"malformed JSON", R"({"inputs": [)", "", 400, "malformed JSON in inference request: *"},
      {"not an object", "42", "", 400,
       "inference request: expected a JSON object, got number"},
      {"unknown datatype",
       R"({"inputs":[{"name":"images","shape":[1],"datatype":"FP16","data":[1]}]})", "",
       400, "tensor 'images': expected datatype one of FP32, INT64, INT32, UINT8, BYTES, got 'FP16'"},
      {"shape vs data",
       R"({"inputs":[{"name":"images","shape":[1,1,28,28],"datatype":"FP32","data":[0.5,0.5]}]})",
       "", 400, "tensor 'images': expected 784 elements for shape [1,1,28,28], got 2 in 'data'"},
      {"binary size vs shape", fp32_784 + std::string(784, '\0'), std::to_string(fp32_784.size()), 400, "tensor 'images': expected binary_data_size 3136 (shape [1,1,28,28] of FP32), got 784"},
      {"truncated binary", images_u8 + std::string(700, '\1'), std::to_string(images_u8.size()), 400,
       "tensor 'images': expected 784 bytes of binary tensor data (parameters.binary_data_size), "
       "got a truncated body with 700 bytes left"},
      {"trailing binary", images_u8 + std::string(800, '\1'), std::to_string(images_u8.size()), 400,
       "binary tensor data: expected 784 bytes after the JSON header (the sum of binary_data_size), got 800"},
      {"binary size without header length", fp32_784 + std::string(784, '\0'), "", 400,
       "tensor 'images' (parameters.binary_data_size 784): expected binary tensor data announced "
       "by an Inference-Header-Content-Length header, got no such header"},
      {"header length not a number", "{}", "12a", 400,
       "Inference-Header-Content-Length: expected a non-negative integer, got '12a'"},
      {"header length beyond body", "{}", "1000", 400,
       "Inference-Header-Content-Length: expected at most the body size 2, got 1000"},
      {"wrong image shape",
       R"({"inputs":[{"name":"images","shape":[1,2,2],"datatype":"UINT8","data":[1,2,3,4]}]})",
       "", 400,
       "input 'images': expected shape [N,1,28,28] or [N,28,28] with N >= 1, got [1,2,2]"},
      {"zero images",
       R"({"inputs":[{"name":"images","shape":[0,28,28],"datatype":"UINT8","data":[]}]})",
       "", 400,
       "input 'images': expected shape [N,1,28,28] or [N,28,28] with N >= 1, got [0,28,28]"},
      {"wrong input name",
       R"({"inputs":[{"name":"pixels","shape":[1],"datatype":"UINT8","data":[1]}]})", "",
       400, "model 'fm': expected one input 'images', got 'pixels'"},
      {"unknown output",
       R"({"inputs":[],"outputs":[{"name":"logits"}]})", "", 400,
       "model 'fm' has no output 'logits'; it has 'embedding', 'class_index', 'class_name', 'margin'"},
  };
  // INT64 images of a valid shape: the datatype is what is wrong.
  json int_images = {{"inputs", {{{"name", "images"}, {"shape", {1, 28, 28}}, {"datatype", "INT64"},
                                  {"data", std::vector<int>(784, 1)}}}}};
  cases.push_back({"image datatype", int_images.dump(), "", 400,
                   "input 'images': expected datatype FP32 or UINT8, got INT64"});
  json out_of_range = {{"inputs", {{{"name", "images"}, {"shape", {1, 28, 28}}, {"datatype", "FP32"},
                                    {"data", std::vector<double>(784, 0.5)}}}}};
  out_of_range["inputs"][0]["data"][3] = 2.0;
  cases.push_back({"pixel range", out_of_range.dump(), "", 400,
                   "input 'images' element 3: expected a value in [0, 1], got 2.000000"});
  return cases;
}

TEST(CloudServer, EveryBadRequestIs400AndTheServerServesOn) {
  TestServer s;
  auto client = s.raw();
  for (const auto& c : bad_requests()) {
    httplib::Headers headers;
    if (!c.header_length.empty()) headers.emplace(kHeaderContentLength, c.header_length);
    auto res = client->Post("/v2/models/fm/infer", headers, c.body, "application/octet-stream");
    ASSERT_TRUE(res) << c.name << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, c.status) << c.name << ": " << res->body;
    std::string message = error_message(res);
    if (!c.message.empty() && c.message.back() == '*') {
      EXPECT_EQ(message.rfind(c.message.substr(0, c.message.size() - 1), 0), 0u) << c.name << ": " << message;
    } else {
      EXPECT_EQ(message, c.message) << c.name;
    }
    expect_serving(*client);  // same keep-alive connection
  }
}

TEST(CloudServer, OversizedBodyIs413AndTheServerServesOn) {
  TestServer s;  // limit 64 KiB
  auto client = s.raw();
  std::string big(100 * 1024, ' ');
  auto res = client->Post("/v2/models/fm/infer", big, "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(error_message(res), "request body of 102400 bytes exceeds the limit of 65536 bytes");
  expect_serving(*client);
  expect_serving(*s.raw());
  EXPECT_NE(s.server->metrics_text().find(R"(code="413")"), std::string::npos);
}

// ---- inference --------------------------------------------------------------------------

TEST(CloudServer, ImageInferenceMatchesTheModel) {
  TestServer s;
  OipClient client(s.client_options());
  auto pixels = testing::test_pixels(5);
  auto images = testing::to_floats(pixels);
  auto result = client.infer_images_u8(pixels.data(), 5, {1, 28, 28});
  ASSERT_EQ(result.count, 5);
  ASSERT_EQ(result.dim, 16);
  for (int i = 0; i < 5; ++i) {
    auto expected = expected_for(s.fm, images.data() + i * 784);
    for (int d = 0; d < 16; ++d) EXPECT_EQ(result.embeddings[i * 16 + d], expected.embedding[d]);
    EXPECT_EQ(result.class_index[i], expected.index);
    EXPECT_EQ(result.class_name[i], kClasses[static_cast<size_t>(expected.index)]);
    EXPECT_NEAR(result.margin[i], expected.margin, 1e-6);
    EXPECT_GT(result.margin[i], 0);
  }
  EXPECT_EQ(result.call.bytes_sent > 5 * 784, true);
  EXPECT_LT(result.call.bytes_sent, 5 * 784 + 400);  // binary UINT8: pixels plus a small header
  EXPECT_GE(result.server.queue_us, 0);
  EXPECT_GE(result.server.server_us, 0);
  EXPECT_EQ(result.server.batch_rows, 5);
}

TEST(CloudServer, JsonAndBinaryRoundTripsGiveTheSameNumbers) {
  TestServer s;
  auto pixels = testing::test_pixels(3, 11);
  auto floats = testing::to_floats(pixels);
  std::vector<ImageInference> results;
  for (bool binary : {false, true}) {
    for (ImageUpload upload : {ImageUpload::fp32, ImageUpload::uint8}) {
      auto options = s.client_options(binary);
      options.upload = upload;
      OipClient client(options);
      results.push_back(client.infer_images(floats.data(), 3, {1, 28, 28}));
    }
  }
  for (size_t k = 1; k < results.size(); ++k) {
    ASSERT_EQ(results[k].embeddings.size(), results[0].embeddings.size());
    EXPECT_EQ(std::memcmp(results[k].embeddings.data(), results[0].embeddings.data(),
                          results[0].embeddings.size() * sizeof(float)),
              0)
        << "variant " << k;
    EXPECT_EQ(results[k].class_index, results[0].class_index);
    EXPECT_EQ(results[k].class_name, results[0].class_name);
    EXPECT_EQ(results[k].margin, results[0].margin);
  }
  // JSON FP32 upload is the largest, binary UINT8 the smallest.
  EXPECT_GT(results[0].call.bytes_sent, results[2].call.bytes_sent);
  EXPECT_GT(results[2].call.bytes_sent, results[3].call.bytes_sent);
}

TEST(CloudServer, RawBinaryRequestWithSelectedBinaryOutputs) {
  TestServer s;
  InferRequest request;
  request.id = "req-42";
  request.inputs.push_back(Tensor::from_uint8s("images", {2, 28, 28}, testing::test_pixels(2)));
  request.inputs.back().binary = true;
  request.outputs = {{"margin", true}, {"class_name", false}};
  EncodedBody encoded = encode_request(request);
  auto res = s.raw()->Post("/v2/models/fm/infer",
                           {{kHeaderContentLength, std::to_string(*encoded.json_size)}},
                           encoded.body, "application/octet-stream");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  ASSERT_TRUE(res->has_header(kHeaderContentLength));
  auto json_size = parse_header_content_length(res->get_header_value(kHeaderContentLength));
  auto header = json::parse(res->body.substr(0, json_size));
  EXPECT_EQ(header["id"], "req-42");
  EXPECT_EQ(header["model_name"], "fm");
  ASSERT_EQ(header["outputs"].size(), 2u);
  EXPECT_EQ(header["outputs"][0]["name"], "margin");
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_EQ(header["outputs"][1]["name"], "class_name");
  EXPECT_EQ(header["outputs"][1]["data"].size(), 2u);
  EXPECT_EQ(res->body.size(), json_size + 8);
}

TEST(CloudServer, RequestLevelBinaryDataOutput) {
  TestServer s;
  auto body = json{{"parameters", {{"binary_data_output", true}}},
                   {"inputs", {{{"name", "images"}, {"shape", {1, 28, 28}}, {"datatype", "UINT8"},
                                {"data", std::vector<int>(784, 9)}}}}};
  auto res = s.raw()->Post("/v2/models/fm/infer", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto json_size = parse_header_content_length(res->get_header_value(kHeaderContentLength));
  auto response = decode_response(res->body, json_size);
  ASSERT_EQ(response.outputs.size(), 4u);
  for (const auto& t : response.outputs) EXPECT_TRUE(t.binary) << t.name;
}

TEST(CloudServer, TextModelEmbedsClassNamesAndPrompts) {
  TestServer s;
  OipClient client(s.client_options());
  auto names = client.class_names();
  EXPECT_EQ(names, kClasses);
  auto out = client.embed_text({"Coat", "a photo of a coat"});
  ASSERT_EQ(out.count, 2);
  ASSERT_EQ(out.dim, 16);
  auto coat = *s.fm.pool.index_of("Coat");
  for (int d = 0; d < 16; ++d) EXPECT_EQ(out.values[d], s.fm.pool.vector(coat)[d]);
  auto prompt = s.fm.text->embed("a photo of a coat");
  for (int d = 0; d < 16; ++d) EXPECT_EQ(out.values[16 + d], prompt[d]);

  OipClient json_client(s.client_options(false));
  auto again = json_client.embed_text({"Coat", "a photo of a coat"});
  EXPECT_EQ(again.values, out.values);
}

TEST(CloudServer, UnknownPromptIs400WithTheEncodersMessage) {
  TestServer s;
  OipClient client(s.client_options());
  try {
    client.embed_text({"Coat", "a spaceship"});
    FAIL() << "expected a RequestError";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.server_message(), "text encoder: prompt 'a spaceship' names no class the model knows");
  }
  EXPECT_EQ(client.class_names().size(), kClasses.size());
}

TEST(CloudServer, TextModelRejectsWrongInputs) {
  TestServer s;
  auto client = s.raw();
  auto res = client->Post(
      "/v2/models/text/infer",
      R"({"inputs":[{"name":"prompts","shape":[1],"datatype":"INT32","data":[1]}]})",
      "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(error_message(res), "input 'prompts': expected datatype BYTES, got INT32");
  res = client->Post("/v2/models/text/infer", R"({"inputs":[],"outputs":[{"name":"embedding"}]})",
                     "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(error_message(res), "model 'text': output 'embedding' needs input 'prompts'");
}

// ---- batching, metrics, stop ------------------------------------------------------------

TEST(CloudServer, ConcurrentClientsAreBatchedAndAnsweredCorrectly) {
  auto options = testing::test_options();
  options.max_queue_delay_us = 5000;
  TestServer s(options, /*call_cost_us=*/5000);
  constexpr int clients = 12, per_client = 6;
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        OipClient client(s.client_options());
        for (int i = 0; i < per_client; ++i) {
          auto pixels = testing::test_pixels(1 + (c + i) % 3, static_cast<uint32_t>(c * 100 + i));
          auto floats = testing::to_floats(pixels);
          auto n = static_cast<int64_t>(pixels.size() / 784);
          auto result = client.infer_images_u8(pixels.data(), n, {1, 28, 28});
          for (int64_t k = 0; k < n; ++k) {
            auto expected = expected_for(s.fm, floats.data() + k * 784);
            if (result.class_index[k] != expected.index ||
                result.embeddings[k * 16] != expected.embedding[0]) {
              ++wrong;
            }
          }
        }
      } catch (const std::exception& e) {
        ++failed;
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  auto stats = s.server->batcher_stats();
  EXPECT_EQ(stats.requests, clients * per_client);
  EXPECT_LE(stats.max_batch_rows, 8);
  // While the model sleeps 5 ms per call, twelve clients queue up behind it.
  EXPECT_GT(stats.max_batch_rows, 1);
  EXPECT_LT(stats.batches, stats.requests);
}

TEST(CloudServer, MetricsHaveTheExpectedSeries) {
  TestServer s;
  auto client = s.raw();
  expect_serving(*client);
  expect_serving(*client);
  client->Post("/v2/models/fm/infer", "{", "application/json");
  client->Post("/v2/models/nope/infer", "{}", "application/json");
  auto res = s.raw(false)->Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  const std::string& text = res->body;
  for (const char* needle :
       {"# TYPE edgefm_inference_requests_total counter",
        "# TYPE edgefm_inference_request_duration_seconds histogram",
        "# TYPE edgefm_batch_size histogram", "# TYPE edgefm_batch_queue_duration_seconds histogram",
        "edgefm_inference_request_duration_seconds_bucket{", "edgefm_batch_size_bucket{",
        "edgefm_batch_queue_duration_seconds_bucket{"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
  auto has_request_line = [&](const std::string& model, const std::string& code, int count) {
    // Label order differs between writers.
    for (const auto& labels : {"{model=\"" + model + "\",code=\"" + code + "\"}",
                               "{code=\"" + code + "\",model=\"" + model + "\"}"}) {
      if (text.find("edgefm_inference_requests_total" + labels + " " + std::to_string(count)) !=
          std::string::npos) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has_request_line("fm", "200", 2)) << text;
  EXPECT_TRUE(has_request_line("fm", "400", 1)) << text;
  EXPECT_TRUE(has_request_line("_unknown", "404", 1)) << text;
}

TEST(CloudServer, StopFinishesRequestsInFlight) {
  auto options = testing::test_options();
  options.max_queue_delay_us = 60'000'000;  // queued requests would wait a minute for company
  TestServer s(options);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 3; ++c) {
    threads.emplace_back([&] {
      OipClient client(s.client_options());
      auto pixels = testing::test_pixels(1);
      try {
        client.infer_images_u8(pixels.data(), 1, {1, 28, 28});
        ++ok;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  // All three are inside the server, waiting in the batcher's queue; stop() runs them.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (s.server->batcher_stats().queued_requests < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(s.server->batcher_stats().queued_requests, 3);
  auto stop_start = std::chrono::steady_clock::now();
  s.server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_start, std::chrono::seconds(30));
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_FALSE(s.server->running());
  EXPECT_EQ(s.server->batcher_stats().batches, 1);

  auto client_options = s.client_options();
  client_options.max_retries = 0;
  client_options.connect_timeout_s = 1;
  OipClient late(client_options);
  EXPECT_FALSE(late.live());
}

}  // namespace
}  // namespace edgefm::cloud
