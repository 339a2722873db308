// End to end: `edgefm edge --listen` as an application on the device sees it. The real
// program serves the Open Inference Protocol on 127.0.0.1; a sample is answered by the
// student, by the cloud FM (a real `edgefm serve`), and by the student as a fallback once the
// cloud is killed; encoded image files are decoded by the student's spec; bad requests get
// 400 with one line; /metrics counts routes and fallbacks; SIGTERM stops it cleanly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <httplib.h>

#include "cloud/oip.h"
#include "common/json_io.h"
#include "data/dataset.h"
#include "data/image.h"
#include "harness/process.h"
#include "support/fixtures.h"
#include "support/live.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

// A few Fashion-MNIST test images, 1 x 28 x 28 bytes each.
const data::Dataset& test_images() {
  static const data::Dataset d =
      data::load_dataset(data::fashion_mnist_description(), data::Part::test, 8);
  return d;
}

std::string images_request(size_t first, size_t n) {
  const data::Dataset& d = test_images();
  const size_t bytes = d.sample_size();
  std::vector<int> values(d.samples.begin() + static_cast<ptrdiff_t>(first * bytes),
                          d.samples.begin() + static_cast<ptrdiff_t>((first + n) * bytes));
  return json{{"inputs",
               {{{"name", "images"},
                 {"datatype", "UINT8"},
                 {"shape", {static_cast<int>(n), 1, 28, 28}},
                 {"data", values}}}}}
      .dump();
}

struct Edge {
  fs::path dir;
  std::unique_ptr<harness::ChildProcess> process;
  std::unique_ptr<httplib::Client> client;

  Edge(const fs::path& d, const std::string& tag, std::vector<std::string> extra) : dir(d) {
    std::vector<std::string> args = {"edge", "--student", testing::small_models().student,
                                     "--listen", "127.0.0.1:0", "--port-file",
                                     (dir / (tag + ".port")).string(), "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    process = std::make_unique<harness::ChildProcess>(EDGEFM_BIN, args, (dir / (tag + ".log")).string());
    const int port = testing::wait_for_port(*process, dir / (tag + ".port"));
    client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_read_timeout(60, 0);
  }

  // POSTs an inference request; returns (status, body as JSON).
  std::pair<int, json> infer(const std::string& body,
                             const httplib::Headers& headers = {},
                             const std::string& type = "application/json") {
    auto res = client->Post("/v2/models/edge/infer", headers, body, type.c_str());
    if (!res) return {-1, json()};
    // Outputs come as JSON unless the request asks for binary ones (these do not).
    json parsed = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
    return {res->status, parsed};
  }
};

// The one string of output `name` in a JSON answer.
std::string output_string(const json& answer, const std::string& name, size_t i = 0) {
  for (const auto& o : answer.at("outputs")) {
    if (o.at("name") == name) return o.at("data").at(i).get<std::string>();
  }
  ADD_FAILURE() << "no output " << name << " in " << answer.dump();
  return "";
}

TEST(EdgeEndpoint, AnswersFromTheStudentTheCloudAndAsFallback) {
  const fs::path dir = testing::scratch_dir("endpoint");
  const auto& models = testing::small_models();
  harness::ChildProcess serve(EDGEFM_BIN,
                           {"serve", "--fm", models.fm, "--port", "0", "--port-file",
                            (dir / "serve.port").string()},
                           (dir / "serve.log").string());
  const std::string server =
      "http://127.0.0.1:" + std::to_string(testing::wait_for_port(serve, dir / "serve.port"));

  // The student answers everything itself.
  Edge local(dir, "edge-only", {"--policy", "edge-only", "--json", (dir / "local.json").string()});
  auto live = local.client->Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  auto meta = local.client->Get("/v2/models/edge");
  ASSERT_TRUE(meta);
  ASSERT_EQ(meta->status, 200) << meta->body;
  const json metadata = json::parse(meta->body);
  EXPECT_EQ(metadata.at("inputs").at(0).at("shape"), json({-1, 1, 28, 28}));
  EXPECT_EQ(metadata.at("parameters").at("classes").size(), 10u);

  auto [status, answer] = local.infer(images_request(0, 3));
  ASSERT_EQ(status, 200) << answer.dump();
  const std::vector<std::string>& names = test_images().class_names;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(output_string(answer, "route", i), "edge");
    EXPECT_NE(std::find(names.begin(), names.end(), output_string(answer, "class_name", i)),
              names.end());
    EXPECT_EQ(output_string(answer, "fallback_reason", i), "");
  }

  // An encoded PNG file, as BYTES in binary tensor data, answered like its pixels.
  const data::Dataset& d = test_images();
  data::DecodedImage image{28, 28, 1, std::vector<uint8_t>(d.samples.begin(), d.samples.begin() + 784)};
  data::write_png(dir / "sample.png", image);
  std::ifstream png(dir / "sample.png", std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(png)), {});
  cloud::InferRequest files_request;
  files_request.inputs.push_back(cloud::Tensor::from_strings("files", {1}, {file}));
  files_request.inputs.back().binary = true;
  const cloud::EncodedBody encoded = cloud::encode_request(files_request);
  auto [file_status, file_answer] = local.infer(
      encoded.body, {{cloud::kHeaderContentLength, std::to_string(*encoded.json_size)}},
      "application/octet-stream");
  ASSERT_EQ(file_status, 200) << file_answer.dump();
  EXPECT_EQ(output_string(file_answer, "class_name"), output_string(answer, "class_name", 0));

  // Bad requests: one line, 400; the endpoint goes on.
  for (const std::string& bad :
       {std::string("{\"inputs\": [{\"name\": \"images\", \"datatype\": \"UINT8\", \"shape\": [1, 3, "
                    "32, 32], \"data\": [0]}]}"),
        std::string("not json"),
        std::string("{\"inputs\": [{\"name\": \"files\", \"datatype\": \"BYTES\", \"shape\": [1], "
                    "\"data\": [\"not an image\"]}]}")}) {
    auto [bad_status, error] = local.infer(bad);
    EXPECT_EQ(bad_status, 400) << bad;
    EXPECT_TRUE(error.contains("error")) << error.dump();
  }
  auto wrong_model = local.client->Post("/v2/models/fm/infer", images_request(0, 1), "application/json");
  ASSERT_TRUE(wrong_model);
  EXPECT_EQ(wrong_model->status, 404);

  // Through the cloud, then with the cloud gone: every sample still answered.
  Edge cloud(dir, "cloud-only", {"--policy", "cloud-only", "--server", server});
  std::tie(status, answer) = cloud.infer(images_request(0, 2));
  ASSERT_EQ(status, 200) << answer.dump();
  EXPECT_EQ(output_string(answer, "route", 0), "cloud");
  EXPECT_EQ(output_string(answer, "route", 1), "cloud");
  serve.stop();
  std::tie(status, answer) = cloud.infer(images_request(2, 2));
  ASSERT_EQ(status, 200) << answer.dump();
  EXPECT_EQ(output_string(answer, "route", 0), "fallback");
  EXPECT_NE(output_string(answer, "fallback_reason", 0), "");

  auto metrics = cloud.client->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("edgefm_edge_answers_total{route=\"cloud\"} 2"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("edgefm_edge_answers_total{route=\"fallback\"} 2"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("edgefm_edge_fallbacks_total{reason="), std::string::npos);
  EXPECT_NE(metrics->body.find("edgefm_edge_model_info{version="), std::string::npos);

  // SIGTERM: a clean stop.
  EXPECT_EQ(cloud.process->stop(std::chrono::seconds(30)), 0) << cloud.process->log_tail();
  EXPECT_EQ(local.process->stop(std::chrono::seconds(30)), 0) << local.process->log_tail();
  EXPECT_NE(local.process->log_tail().find("answered 4 requests' samples: edge 4"), std::string::npos)
      << local.process->log_tail();
  const json report = read_json_file(dir / "local.json");
  EXPECT_EQ(report.at("samples"), 4);
  EXPECT_EQ(report.at("counts").at("edge"), 4);
  fs::remove_all(dir);
}

TEST(EdgeEndpoint, ListenTakesNoStreamAndAnAddress) {
  const auto& models = testing::small_models();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--listen", "nohostport"},
        std::vector<std::string>{"--listen", "127.0.0.1:70000"},
        std::vector<std::string>{"--listen", "127.0.0.1:0", "--samples", "5"}}) {
    std::string command = std::string(EDGEFM_BIN) + " edge --student " + models.student;
    for (const auto& a : args) command += " " + a;
    const int status = std::system((command + " > /dev/null 2>&1").c_str());
    EXPECT_EQ(WEXITSTATUS(status), 2) << command;
  }
}

}  // namespace
}  // namespace edgefm
