// The customization service through HTTP with a fake job runner: sample upload and dedupe,
// the job lifecycle (states, progress, versions, warm-start information), artifact fetch with
// checksum verification, restart, auth and error answers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "cloud/customization.h"
#include "cloud/customization_client.h"
#include "cloud/linear_model.h"
#include "common/checksum.h"

namespace edgefm::cloud {
namespace {

namespace fs = std::filesystem;

const char* kToken = "s3cret";
const std::vector<std::string> kClasses = {"a", "b", "c"};

fs::path fresh_dir(const std::string& name) {
  static std::atomic<int> counter{0};
  fs::path dir = fs::temp_directory_path() /
                 ("edgefm-customization-" + name + "-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter++));
  fs::remove_all(dir);
  return dir;
}

// n distinct samples of 28 x 28 bytes; sample i is filled from seed + i.
std::vector<std::string> samples(size_t n, uint32_t seed = 1) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string s(784, '\0');
    uint32_t state = seed * 7919u + static_cast<uint32_t>(i) * 104729u + 1u;
    for (auto& c : s) {
      state = state * 1664525u + 1013904223u;
      c = static_cast<char>(state >> 24);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string_view> views(const std::vector<std::string>& s) {
  return {s.begin(), s.end()};
}

// A door the fake runner waits at, so tests can see a job while it runs.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [this] { return open; });
  }
};

// What the fake runner saw of each job.
struct Seen {
  std::mutex mutex;
  std::vector<CustomizationJob> jobs;
};

struct Harness {
  fs::path root;
  bool owns_root;
  models::FoundationModel fm;
  std::unique_ptr<CustomizationService> service;
  std::unique_ptr<CloudServer> server;

  Harness(JobRunner runner, JobValidator validator = {},
          CustomizationOptions options = customization_default_options(),
          fs::path existing_root = {})
      : root(existing_root.empty() ? fresh_dir("svc") : existing_root),
        owns_root(existing_root.empty()) {
    LinearModelOptions m = linear_model_default_options();
    m.embedding_dim = 8;
    fm = make_linear_foundation_model(m, kClasses);
    options.root = root;
    options.sample_shape = {1, 28, 28};
    service = std::make_unique<CustomizationService>(options, std::move(runner), std::move(validator));
    ServerOptions s = server_default_options();
    s.token = kToken;
    s.max_request_bytes = 256 * 1024;
    s.threads = 8;
    s.accept_token = service->token_check();  // device tokens, when a registry is configured
    server = std::make_unique<CloudServer>(fm, s, std::vector<ServerExtension>{service->extension()});
  }
  ~Harness() {
    server->stop();
    service->stop();
    std::error_code ignored;
    if (owns_root) fs::remove_all(root, ignored);
  }

  ClientOptions client_options() const {
    ClientOptions o = client_default_options();
    o.url = server->url();
    o.token = kToken;
    o.read_timeout_s = 20;
    return o;
  }
  std::unique_ptr<httplib::Client> raw(bool with_token = true) const {
    auto c = std::make_unique<httplib::Client>(server->url());
    c->set_read_timeout(20, 0);
    if (with_token) c->set_bearer_token_auth(kToken);
    return c;
  }
};

// Writes a small artifact naming the job; reports progress in two steps.
JobRunner fake_runner(Seen* seen = nullptr, Gate* gate = nullptr, std::string arch = "tiny-cnn") {
  return [seen, gate, arch](const CustomizationJob& job, const JobProgress& progress) -> json {
    if (seen) {
      std::lock_guard lock(seen->mutex);
      seen->jobs.push_back(job);
    }
    progress(0.5, "halfway");
    if (gate) gate->wait();
    progress(0.9, "writing");
    std::ofstream out(job.output, std::ios::binary);
    out << "artifact " << job.id << " v" << job.version << " samples " << job.sample_count();
    return {{"arch", arch}, {"samples_seen", job.sample_count()}};
  };
}

json wait_until(CustomizationClient& client, const std::string& id, const std::string& state) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  json record;
  while (std::chrono::steady_clock::now() < deadline) {
    record = client.job(id);
    if (record["state"] == state) return record;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ADD_FAILURE() << "job " << id << " never reached " << state << ": " << record.dump();
  return record;
}

TEST(Customization, UploadAcknowledgesEveryHashAndStoresEachContentOnce) {
  Harness h(fake_runner());
  CustomizationClient client(h.client_options());
  auto s = samples(4);
  std::vector<std::string_view> batch = {s[0], s[1], s[2], s[1], s[3]};
  auto ack = client.upload_samples("cam-1", batch, {1, 28, 28});
  ASSERT_EQ(ack.acknowledged.size(), 5u);
  for (size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(ack.acknowledged[i], sha256_hex(batch[i]));
  EXPECT_EQ(ack.added, 4u);
  EXPECT_EQ(ack.duplicates, 1u);
  EXPECT_EQ(ack.stored, 4u);

  auto again = client.upload_samples("cam-1", views(s), {1, 28, 28});
  EXPECT_EQ(again.added, 0u);
  EXPECT_EQ(again.duplicates, 4u);
  EXPECT_EQ(again.stored, 4u);

  // Devices are separate.
  EXPECT_EQ(client.upload_samples("cam-2", {s[0]}, {1, 28, 28}).added, 1u);
  EXPECT_EQ(client.device("cam-1")["samples"], 4);
  EXPECT_EQ(client.device("cam-2")["samples"], 1);
  EXPECT_EQ(client.device("cam-3")["samples"], 0);

  size_t files = 0;
  for (const auto& e : fs::directory_iterator(h.root / "cam-1" / "samples")) files += e.path().extension() == ".u8";
  EXPECT_EQ(files, 4u);
}

TEST(Customization, MetadataIsKeptBesideTheSample) {
  Harness h(fake_runner());
  CustomizationClient client(h.client_options());
  auto s = samples(2);
  client.upload_samples("cam", views(s), {1, 28, 28}, {json{{"margin", 0.01}}, json::object()});
  const auto dir = h.root / "cam" / "samples";
  auto meta = read_json_file(dir / (sha256_hex(s[0]) + ".json"));
  EXPECT_DOUBLE_EQ(meta["margin"].get<double>(), 0.01);
  EXPECT_FALSE(fs::exists(dir / (sha256_hex(s[1]) + ".json")));
}

TEST(Customization, JsonUploadWithoutBinaryDataWorksToo) {
  Harness h(fake_runner());
  auto s = samples(1);
  std::vector<int> data(s[0].begin(), s[0].end());
  for (auto& d : data) d &= 0xff;
  json body = {{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 28, 28}}, {"data", data}}}}};
  auto res = h.raw()->Post("/v2/customization/devices/cam/samples", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto answer = json::parse(res->body);
  EXPECT_EQ(answer["acknowledged"][0], sha256_hex(s[0]));
  EXPECT_EQ(answer["added"], 1);
}

TEST(Customization, JobLifecycleThroughHttp) {
  Seen seen;
  Gate gate;
  Harness h(fake_runner(&seen, &gate));
  CustomizationClient client(h.client_options());
  auto s = samples(6);
  client.upload_samples("cam", views(s), {1, 28, 28});

  json submitted = client.submit_job("cam", {{"epochs", 1}});
  const std::string id = submitted["id"];
  EXPECT_TRUE(submitted["state"] == "queued" || submitted["state"] == "running");
  EXPECT_EQ(submitted["device"], "cam");

  json running = wait_until(client, id, "running");
  // Progress arrives while the job runs.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (running["message"] != "halfway" && std::chrono::steady_clock::now() < deadline) {
    running = client.job(id);
  }
  EXPECT_EQ(running["message"], "halfway");
  EXPECT_DOUBLE_EQ(running["progress"].get<double>(), 0.5);
  EXPECT_EQ(running["version"], 1);
  EXPECT_FALSE(client.latest_artifact("cam").has_value());

  gate.release();
  json done = client.wait_for_job(id, 20);
  EXPECT_EQ(done["state"], "done");
  EXPECT_DOUBLE_EQ(done["progress"].get<double>(), 1.0);
  EXPECT_EQ(done["version"], 1);
  EXPECT_EQ(done["arch"], "tiny-cnn");
  EXPECT_EQ(done["result"]["summary"]["samples_seen"], 6);

  {
    std::lock_guard lock(seen.mutex);
    ASSERT_EQ(seen.jobs.size(), 1u);
    const auto& job = seen.jobs[0];
    EXPECT_EQ(job.sample_count(), 6u);
    EXPECT_EQ(job.samples.size(), 6u * 784u);
    EXPECT_TRUE(std::is_sorted(job.sample_hashes.begin(), job.sample_hashes.end()));
    // Sample i of the job is the content whose hash is sample_hashes[i].
    for (size_t i = 0; i < job.sample_count(); ++i) {
      std::string_view bytes(reinterpret_cast<const char*>(job.samples.data()) + i * 784, 784);
      EXPECT_EQ(sha256_hex(bytes), job.sample_hashes[i]);
    }
    EXPECT_FALSE(job.previous.has_value());
    EXPECT_TRUE(job.previous_artifact.empty());
    EXPECT_EQ(job.request["epochs"], 1);
  }

  auto latest = client.latest_artifact("cam");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ((*latest)["version"], 1);
  EXPECT_EQ((*latest)["arch"], "tiny-cnn");
  EXPECT_EQ((*latest)["job"], id);
  const fs::path got = h.root / "downloaded.pt";
  json meta = client.download_artifact("cam", 1, got);
  std::ifstream in(got, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(bytes, "artifact " + id + " v1 samples 6");
  EXPECT_EQ(meta["sha256"], sha256_hex(bytes));
  EXPECT_EQ(meta["size"], bytes.size());

  // The raw download carries the checksum in a header.
  auto res = h.raw()->Get("/v2/customization/devices/cam/artifacts/1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("X-Edgefm-Sha256"), sha256_hex(bytes));
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/octet-stream");

  // A second job publishes version 2 and sees version 1 as the previous artifact.
  client.upload_samples("cam", views(samples(2, 99)), {1, 28, 28});
  json second = client.wait_for_job(client.submit_job("cam", json::object())["id"], 20);
  EXPECT_EQ(second["state"], "done");
  EXPECT_EQ(second["version"], 2);
  {
    std::lock_guard lock(seen.mutex);
    ASSERT_EQ(seen.jobs.size(), 2u);
    const auto& job = seen.jobs[1];
    EXPECT_EQ(job.sample_count(), 8u);
    ASSERT_TRUE(job.previous.has_value());
    EXPECT_EQ((*job.previous)["version"], 1);
    EXPECT_EQ((*job.previous)["arch"], "tiny-cnn");
    EXPECT_EQ(job.previous_artifact, h.root / "cam" / "artifacts" / "v1.pt");
  }
  EXPECT_EQ((*client.latest_artifact("cam"))["version"], 2);
  auto listed = json::parse(h.raw()->Get("/v2/customization/devices/cam/artifacts")->body);
  EXPECT_EQ(listed["artifacts"].size(), 2u);
  auto jobs = json::parse(h.raw()->Get("/v2/customization/devices/cam/jobs")->body);
  ASSERT_EQ(jobs["jobs"].size(), 2u);
  EXPECT_EQ(jobs["jobs"][0]["id"], id);
  EXPECT_EQ(client.device("cam")["latest_version"], 2);
}

TEST(Customization, ACorruptedArtifactIsRefusedByTheClient) {
  Harness h(fake_runner());
  CustomizationClient client(h.client_options());
  client.upload_samples("cam", views(samples(2)), {1, 28, 28});
  ASSERT_EQ(client.wait_for_job(client.submit_job("cam", json::object())["id"], 20)["state"], "done");
  {
    std::ofstream tamper(h.root / "cam" / "artifacts" / "v1.pt", std::ios::binary | std::ios::app);
    tamper << "x";
  }
  const fs::path target = h.root / "downloaded.pt";
  try {
    client.download_artifact("cam", 1, target);
    FAIL() << "expected a checksum error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(target));
}

TEST(Customization, FailedJobPublishesNothing) {
  Harness h([](const CustomizationJob& job, const JobProgress& progress) -> json {
    progress(0.3, "about to fail");
    std::ofstream(job.output) << "half an artifact";
    throw Error("distillation diverged");
  });
  CustomizationClient client(h.client_options());
  client.upload_samples("cam", views(samples(3)), {1, 28, 28});
  json record = client.wait_for_job(client.submit_job("cam", json::object())["id"], 20);
  EXPECT_EQ(record["state"], "failed");
  EXPECT_EQ(record["error"], "distillation diverged");
  EXPECT_FALSE(client.latest_artifact("cam").has_value());
  // Nothing partial is left among the artifacts.
  for (const auto& e : fs::directory_iterator(h.root / "cam" / "artifacts")) ADD_FAILURE() << e.path();
}

TEST(Customization, RunnerWithoutArchOrArtifactFailsTheJob) {
  Harness h([](const CustomizationJob& job, const JobProgress&) -> json {
    std::ofstream(job.output) << "x";
    return {{"accuracy", 1}};
  });
  CustomizationClient client(h.client_options());
  client.upload_samples("cam", views(samples(1)), {1, 28, 28});
  json record = client.wait_for_job(client.submit_job("cam", json::object())["id"], 20);
  EXPECT_EQ(record["state"], "failed");
  EXPECT_NE(record["error"].get<std::string>().find("'arch'"), std::string::npos);
}

TEST(Customization, CancelQueuedAndRunningJobs) {
  Gate gate;
  Seen seen;
  // The runner reports progress after the gate: that is where a cancelled job stops.
  Harness h(fake_runner(&seen, &gate));
  CustomizationClient client(h.client_options());
  client.upload_samples("cam", views(samples(2)), {1, 28, 28});
  const std::string first = client.submit_job("cam", json::object())["id"];
  const std::string second = client.submit_job("cam", json::object())["id"];
  wait_until(client, first, "running");

  json cancelled = client.cancel_job(second);
  EXPECT_EQ(cancelled["state"], "cancelled");
  json cancelling = client.cancel_job(first);
  EXPECT_EQ(cancelling["state"], "running");
  gate.release();
  json record = client.wait_for_job(first, 20);
  EXPECT_EQ(record["state"], "cancelled");
  EXPECT_FALSE(client.latest_artifact("cam").has_value());
  EXPECT_TRUE(h.service->wait_idle(10));
  std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.jobs.size(), 1u);  // the second never ran
  try {
    client.cancel_job(first);
    FAIL() << "expected 409";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 409);
  }
}

TEST(Customization, JobRequestErrors) {
  Harness h(fake_runner(), [](const json& request) {
    if (request.contains("epochs") && !request["epochs"].is_number_integer()) {
      throw Error("job request field 'epochs': expected an integer");
    }
  });
  CustomizationClient client(h.client_options());
  auto status_of = [&](auto&& call) {
    try {
      call();
    } catch (const RequestError& e) {
      return e.status();
    }
    return 200;
  };
  // No samples yet.
  EXPECT_EQ(status_of([&] { client.submit_job("cam", json::object()); }), 409);
  client.upload_samples("cam", views(samples(1)), {1, 28, 28});
  EXPECT_EQ(status_of([&] { client.submit_job("cam", {{"epochs", "many"}}); }), 400);
  EXPECT_EQ(status_of([&] { client.submit_job("cam", json::array()); }), 400);
  auto res = h.raw()->Post("/v2/customization/devices/cam/jobs", "{not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("malformed JSON"), std::string::npos);
  EXPECT_EQ(status_of([&] { client.job("job-nope"); }), 404);
  EXPECT_EQ(status_of([&] { client.artifact_metadata("cam", 7); }), 404);
  EXPECT_EQ(h.raw()->Get("/v2/customization/devices/cam/artifacts/latest")->status, 404);
  auto bad_version = h.raw()->Get("/v2/customization/devices/cam/artifacts/abc");
  EXPECT_EQ(bad_version->status, 400);
  EXPECT_NE(bad_version->body.find("expected a positive integer or 'latest'"), std::string::npos);
  EXPECT_EQ(status_of([&] { client.device(".hidden"); }), 400);
  EXPECT_EQ(status_of([&] { client.device(std::string(65, 'x')); }), 400);
}

TEST(Customization, SampleUploadBodiesParseWithoutAService) {
  const models::ImageShape shape{1, 2, 2};
  const json body = {{"inputs",
                      {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {2, 2, 2}},
                        {"data", {1, 2, 3, 4, 5, 6, 7, 8}}},
                       {{"name", "metadata"}, {"datatype", "BYTES"}, {"shape", {2}},
                        {"data", {"{}", R"({"label":"cat"})"}}}}}};
  const SampleUpload upload = parse_sample_upload(body.dump(), std::nullopt, shape);
  EXPECT_EQ(upload.count, 2u);
  EXPECT_EQ(upload.images, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_EQ(upload.metadata.size(), 2u);
  EXPECT_EQ(upload.metadata[1]["label"], "cat");
  EXPECT_THROW(parse_sample_upload(body.dump(), std::nullopt, models::ImageShape{1, 3, 3}),
               HttpError);
  EXPECT_THROW(parse_job_request("{\"profile\": "), HttpError);
  EXPECT_EQ(parse_job_request(R"({"epochs": 3})")["epochs"], 3);
}

TEST(Customization, UploadErrors) {
  Harness h(fake_runner());
  auto raw = h.raw();
  auto post = [&](const json& body) {
    auto res = raw->Post("/v2/customization/devices/cam/samples", body.dump(), "application/json");
    EXPECT_TRUE(res);
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    return std::make_pair(res->status, json::parse(res->body).value("error", ""));
  };
  auto [s1, m1] = post({{"inputs", {{{"name", "images"}, {"datatype", "FP32"}, {"shape", {1, 2}}, {"data", {0.5, 0.5}}}}}});
  EXPECT_EQ(s1, 400);
  EXPECT_NE(m1.find("expected datatype UINT8"), std::string::npos) << m1;
  auto [s2, m2] = post({{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 2}}, {"data", {1, 2}}}}}});
  EXPECT_EQ(s2, 400);
  EXPECT_NE(m2.find("expected shape [N,1,28,28]"), std::string::npos) << m2;
  auto [s3, m3] = post({{"inputs", json::array()}});
  EXPECT_EQ(s3, 400);
  EXPECT_NE(m3.find("expected an input 'images'"), std::string::npos) << m3;
  std::vector<int> pixels(784, 1);
  auto [s4, m4] = post({{"inputs",
                         {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 28, 28}}, {"data", pixels}},
                          {{"name", "metadata"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"[1]"}}}}}});
  EXPECT_EQ(s4, 400);
  EXPECT_NE(m4.find("expected a JSON object"), std::string::npos) << m4;
  auto [s5, m5] = post({{"inputs", {{{"name", "labels"}, {"datatype", "UINT8"}, {"shape", {1}}, {"data", {1}}}}}});
  EXPECT_EQ(s5, 400);
  EXPECT_NE(m5.find("unexpected input 'labels'"), std::string::npos) << m5;
  // Over the request-size limit.
  auto big = raw->Post("/v2/customization/devices/cam/samples", std::string(300 * 1024, 'x'),
                       "application/octet-stream");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("exceeds the limit"), std::string::npos);
  // Nothing was stored by any of these.
  CustomizationClient client(h.client_options());
  EXPECT_EQ(client.device("cam")["samples"], 0);
}

TEST(Customization, EveryEndpointNeedsTheToken) {
  Harness h(fake_runner());
  auto anonymous = h.raw(false);
  for (const std::string path :
       {"/v2/customization/devices/cam", "/v2/customization/devices/cam/jobs",
        "/v2/customization/jobs/job-1", "/v2/customization/devices/cam/artifacts",
        "/v2/customization/devices/cam/artifacts/latest", "/v2/customization/devices/cam/artifacts/1"}) {
    auto res = anonymous->Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer") << path;
    EXPECT_NE(res->body.find("missing 'Authorization: Bearer <token>' header"), std::string::npos);
  }
  auto upload = anonymous->Post("/v2/customization/devices/cam/samples", "{}", "application/json");
  EXPECT_EQ(upload->status, 401);
  auto job = anonymous->Post("/v2/customization/devices/cam/jobs", "{}", "application/json");
  EXPECT_EQ(job->status, 401);
  EXPECT_EQ(anonymous->Delete("/v2/customization/jobs/job-1")->status, 401);
  ClientOptions wrong = h.client_options();
  wrong.token = "guess";
  CustomizationClient client(wrong);
  try {
    client.device("cam");
    FAIL() << "expected 401";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(e.server_message(), "wrong bearer token");
  }
  // The server metadata lists the extension.
  auto meta = json::parse(h.raw()->Get("/v2")->body);
  EXPECT_EQ(meta["extensions"], (json{"binary_tensor_data", "edgefm_customization"}));
}

TEST(Customization, QueueLimitAnswers429) {
  Gate gate;
  CustomizationOptions options = customization_default_options();
  options.max_queued_jobs = 1;
  Harness h(fake_runner(nullptr, &gate), {}, options);
  CustomizationClient client(h.client_options());
  client.upload_samples("cam", views(samples(1)), {1, 28, 28});
  const std::string running = client.submit_job("cam", json::object())["id"];
  wait_until(client, running, "running");
  client.submit_job("cam", json::object());  // waits
  try {
    client.submit_job("cam", json::object());
    FAIL() << "expected 429";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 429);
  }
  gate.release();
  EXPECT_TRUE(h.service->wait_idle(20));
}

TEST(Customization, ARestartedServiceKeepsSamplesJobsAndArtifacts) {
  const fs::path root = fresh_dir("restart");
  std::string done_id;
  {
    Harness h(fake_runner(), {}, customization_default_options(), root);
    CustomizationClient client(h.client_options());
    client.upload_samples("cam", views(samples(3)), {1, 28, 28});
    done_id = client.submit_job("cam", json::object())["id"];
    ASSERT_EQ(client.wait_for_job(done_id, 20)["state"], "done");
  }
  // A record left "running" by a crash, and one left queued.
  json crashed = read_json_file(root / "cam" / "jobs" / (done_id + ".json"));
  crashed["id"] = "job-crashed";
  crashed["state"] = "running";
  write_json_file(root / "cam" / "jobs" / "job-crashed.json", crashed);
  json queued = crashed;
  queued["id"] = "job-queued";
  queued["state"] = "queued";
  queued["created_unix"] = crashed["created_unix"].get<double>() + 1;
  write_json_file(root / "cam" / "jobs" / "job-queued.json", queued);

  Harness h(fake_runner(), {}, customization_default_options(), root);
  CustomizationClient client(h.client_options());
  EXPECT_EQ(client.device("cam")["samples"], 3);
  EXPECT_EQ(client.job(done_id)["state"], "done");
  json after = client.job("job-crashed");
  EXPECT_EQ(after["state"], "failed");
  EXPECT_NE(after["error"].get<std::string>().find("interrupted"), std::string::npos);
  // The queued one runs after the restart and publishes the next version.
  json resumed = client.wait_for_job("job-queued", 20);
  EXPECT_EQ(resumed["state"], "done");
  EXPECT_EQ(resumed["version"], 2);
  // Re-uploading what the service had before the restart adds nothing.
  EXPECT_EQ(client.upload_samples("cam", views(samples(3)), {1, 28, 28}).added, 0u);
  fs::remove_all(root);
}

// ---- devices: one token each ---------------------------------------------------------------

// A service with a device registry holding devices "a" and "b"; kToken is the admin token.
struct DeviceHarness {
  fs::path registry = fresh_dir("registry") / "devices.json";
  std::string token_a = add_registry_device(registry, "a");
  std::string token_b = add_registry_device(registry, "b");
  std::unique_ptr<Harness> h;

  explicit DeviceHarness(JobRunner runner, CustomizationOptions options = customization_default_options()) {
    options.devices = registry;
    options.admin_token = kToken;
    h = std::make_unique<Harness>(std::move(runner), JobValidator{}, options);
  }
  ~DeviceHarness() {
    h.reset();
    std::error_code ignored;
    fs::remove_all(registry.parent_path(), ignored);
  }
  std::unique_ptr<httplib::Client> as(const std::string& token) const {
    auto c = std::make_unique<httplib::Client>(h->server->url());
    c->set_read_timeout(20, 0);
    c->set_bearer_token_auth(token);
    return c;
  }
  ClientOptions client_options(const std::string& token) const {
    ClientOptions o = h->client_options();
    o.token = token;
    return o;
  }
};

// One request of every customization endpoint against `device` (and `job`), with its status.
std::vector<std::pair<std::string, int>> every_endpoint(httplib::Client& c, const std::string& device,
                                                        const std::string& job) {
  const std::string base = "/v2/customization/devices/" + device;
  auto s = samples(1, 77);
  std::vector<int> data(s[0].begin(), s[0].end());
  for (auto& d : data) d &= 0xff;
  const json upload = {{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 28, 28}}, {"data", data}}}}};
  std::vector<std::pair<std::string, int>> out;
  auto note = [&out](const std::string& what, const httplib::Result& res) {
    out.emplace_back(what, res ? res->status : -1);
  };
  note("POST samples", c.Post(base + "/samples", upload.dump(), "application/json"));
  note("GET device", c.Get(base));
  note("POST jobs", c.Post(base + "/jobs", "{}", "application/json"));
  note("GET jobs", c.Get(base + "/jobs"));
  note("GET job", c.Get("/v2/customization/jobs/" + job));
  note("GET artifacts", c.Get(base + "/artifacts"));
  note("GET artifacts/latest", c.Get(base + "/artifacts/latest"));
  note("GET artifacts/1", c.Get(base + "/artifacts/1"));
  note("GET artifacts/1/metadata", c.Get(base + "/artifacts/1/metadata"));
  note("GET artifacts/latest/metadata", c.Get(base + "/artifacts/latest/metadata"));
  note("DELETE job", c.Delete("/v2/customization/jobs/" + job));
  return out;
}

TEST(CustomizationDevices, ADeviceTokenReachesOnlyItsOwnDeviceOnEveryEndpoint) {
  DeviceHarness d(fake_runner());
  CustomizationClient admin(d.h->client_options());
  // Device b has samples, a job and a published artifact.
  admin.upload_samples("b", views(samples(3)), {1, 28, 28});
  const std::string job_b = admin.wait_for_job(admin.submit_job("b", json::object())["id"], 20)["id"];

  // The edge's client works with the device's own token, for its own device.
  CustomizationClient client_a(d.client_options(d.token_a));
  EXPECT_EQ(client_a.upload_samples("a", views(samples(2, 5)), {1, 28, 28}).added, 2u);
  const std::string job_a = client_a.wait_for_job(client_a.submit_job("a", json::object())["id"], 20)["id"];
  EXPECT_EQ(client_a.latest_artifact("a").value()["version"], 1);

  // a's token against b: 403 with a one-line JSON error on every endpoint.
  auto as_a = d.as(d.token_a);
  for (const auto& [what, status] : every_endpoint(*as_a, "b", job_b)) {
    EXPECT_EQ(status, 403) << what;
  }
  auto res = as_a->Get("/v2/customization/devices/b/artifacts");
  ASSERT_TRUE(res);
  json error = json::parse(res->body);
  EXPECT_NE(error["error"].get<std::string>().find("device 'a'"), std::string::npos) << res->body;
  EXPECT_EQ(res->body.find('\n'), std::string::npos);
  // ... and the device list, adding and revoking are the admin's.
  EXPECT_EQ(as_a->Get("/v2/customization/devices")->status, 403);
  EXPECT_EQ(as_a->Post("/v2/customization/devices", R"({"device": "c"})", "application/json")->status, 403);
  EXPECT_EQ(as_a->Delete("/v2/customization/devices/b")->status, 403);
  EXPECT_EQ(as_a->Delete("/v2/customization/devices/a")->status, 403);
  // Nothing of b changed.
  EXPECT_EQ(admin.device("b")["samples"], 3);
  EXPECT_EQ(admin.device("b")["jobs"], 1);
  EXPECT_EQ(admin.job(job_b)["state"], "done");

  // a's token on its own device: every endpoint answers (DELETE of a finished job: 409).
  for (const auto& [what, status] : every_endpoint(*as_a, "a", job_a)) {
    EXPECT_NE(status, 403) << what;
    EXPECT_NE(status, 401) << what;
  }
  // The admin token reaches b, and lists the devices.
  auto as_admin = d.as(kToken);
  for (const auto& [what, status] : every_endpoint(*as_admin, "b", job_b)) {
    EXPECT_NE(status, 403) << what;
    EXPECT_NE(status, 401) << what;
  }
  auto listed = as_admin->Get("/v2/customization/devices");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200) << listed->body;
  json devices = json::parse(listed->body)["devices"];
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0]["device"], "a");
  EXPECT_GE(devices[0]["samples"].get<int>(), 2);
  EXPECT_GE(devices[0]["model_version"].get<int>(), 1);  // its own POST jobs above may have run too
  EXPECT_GT(devices[0]["last_contact_unix"].get<double>(), 0);

  // A device token may use the inference endpoints too (the edge asks the FM with it).
  EXPECT_EQ(as_a->Get("/v2/models/fm")->status, 200);

  // The admin adds and revokes devices over HTTP.
  auto added = as_admin->Post("/v2/customization/devices", R"({"device": "c"})", "application/json");
  ASSERT_TRUE(added);
  ASSERT_EQ(added->status, 201) << added->body;
  const std::string token_c = json::parse(added->body)["token"];
  EXPECT_EQ(d.as(token_c)->Get("/v2/customization/devices/c")->status, 200);
  EXPECT_EQ(d.as(token_c)->Get("/v2/customization/devices/a")->status, 403);
  EXPECT_EQ(as_admin->Post("/v2/customization/devices", R"({"device": "c"})", "application/json")->status, 409);
  EXPECT_EQ(as_admin->Post("/v2/customization/devices", R"({"device": "../x"})", "application/json")->status, 400);
  EXPECT_EQ(as_admin->Post("/v2/customization/devices", R"({"name": "x"})", "application/json")->status, 400);
  EXPECT_EQ(as_admin->Delete("/v2/customization/devices/c")->status, 200);
  EXPECT_EQ(d.as(token_c)->Get("/v2/customization/devices/c")->status, 401);
  EXPECT_EQ(as_admin->Delete("/v2/customization/devices/c")->status, 404);  // not active
  EXPECT_EQ(read_device_registry(d.registry).size(), 3u);
}

TEST(CustomizationDevices, RevokedAndUnknownTokensGet401Everywhere) {
  DeviceHarness d(fake_runner());
  CustomizationClient admin(d.h->client_options());
  admin.upload_samples("b", views(samples(2)), {1, 28, 28});
  const std::string job_b = admin.wait_for_job(admin.submit_job("b", json::object())["id"], 20)["id"];
  auto as_b = d.as(d.token_b);
  EXPECT_EQ(as_b->Get("/v2/customization/devices/b")->status, 200);

  // Revoked through the file, as `edgefm devices revoke` does, while the service runs.
  revoke_registry_device(d.registry, "b");
  for (const auto& [what, status] : every_endpoint(*as_b, "b", job_b)) {
    EXPECT_EQ(status, 401) << what;
  }
  EXPECT_EQ(as_b->Get("/v2/models/fm")->status, 401);
  auto stranger = d.as("edgefm-not-a-token");
  for (const auto& [what, status] : every_endpoint(*stranger, "a", job_b)) {
    EXPECT_EQ(status, 401) << what;
  }
  // A new token for b works; the old one stays refused; b's data are still there.
  const std::string renewed = add_registry_device(d.registry, "b");
  EXPECT_EQ(d.as(renewed)->Get("/v2/customization/devices/b")->status, 200);
  EXPECT_EQ(as_b->Get("/v2/customization/devices/b")->status, 401);
  EXPECT_EQ(admin.device("b")["samples"], 2);
}

TEST(CustomizationDevices, WithoutARegistryTheSharedTokenReachesEveryDevice) {
  Harness h(fake_runner());
  auto c = h.raw();
  EXPECT_EQ(c->Get("/v2/customization/devices/x")->status, 200);
  EXPECT_EQ(c->Get("/v2/customization/devices")->status, 404);  // no registry to list
  EXPECT_EQ(h.raw(false)->Get("/v2/customization/devices/x")->status, 401);
}

// ---- jobs for many devices ---------------------------------------------------------------

TEST(CustomizationJobs, FairQueueTakesDevicesInTurnAndNeverTwoOfOneDevice) {
  FairJobQueue q;
  for (const auto& [device, id] : std::vector<std::pair<std::string, std::string>>{
           {"a", "a1"}, {"a", "a2"}, {"a", "a3"}, {"b", "b1"}, {"c", "c1"}, {"c", "c2"}}) {
    q.push(device, id);
  }
  EXPECT_EQ(q.queued(), 6u);
  EXPECT_EQ(q.pop()->second, "a1");
  EXPECT_EQ(q.pop()->second, "b1");
  EXPECT_EQ(q.pop()->second, "c1");
  EXPECT_FALSE(q.pop().has_value());  // a and c have jobs waiting but one running each
  EXPECT_EQ(q.running(), 3u);
  q.finished("c");
  EXPECT_EQ(q.pop()->second, "c2");   // the only device free
  q.finished("a");
  EXPECT_TRUE(q.remove("a3"));
  EXPECT_FALSE(q.remove("a3"));
  EXPECT_EQ(q.pop()->second, "a2");
  EXPECT_EQ(q.queued(), 0u);
  EXPECT_FALSE(q.pop().has_value());
}

// Two workers, three devices: jobs start in round robin order, never behind two jobs of one
// other device. The runner records the order jobs start in and holds each until released.
TEST(CustomizationJobs, TwoWorkersRunThreeDevicesJobsInFairOrder) {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> started;  // "device:n" in start order
  size_t released = 0;
  JobRunner runner = [&](const CustomizationJob& job, const JobProgress&) -> json {
    size_t my_turn;
    {
      std::unique_lock lock(mutex);
      started.push_back(job.device + ":" + job.request.value("n", std::string()));
      my_turn = started.size();
      changed.notify_all();
      changed.wait(lock, [&] { return released >= my_turn; });
    }
    std::ofstream(job.output) << job.id;
    return {{"arch", "tiny"}};
  };
  CustomizationOptions options = customization_default_options();
  options.job_workers = 2;
  Harness h(runner, {}, options);
  for (const std::string device : {"a", "b", "c"}) {
    h.service->add_samples(device, reinterpret_cast<const uint8_t*>(samples(1)[0].data()), 1);
  }
  auto wait_started = [&](size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(20), [&] { return started.size() >= n; });
  };
  // a's first job runs; a queues two more; b's first job runs on the second worker (a has
  // one running); then b queues another and c two. Both workers are busy meanwhile.
  h.service->submit_job("a", {{"n", "1"}});
  ASSERT_TRUE(wait_started(1));
  h.service->submit_job("a", {{"n", "2"}});
  h.service->submit_job("a", {{"n", "3"}});
  h.service->submit_job("b", {{"n", "1"}});
  ASSERT_TRUE(wait_started(2));
  h.service->submit_job("b", {{"n", "2"}});
  h.service->submit_job("c", {{"n", "1"}});
  h.service->submit_job("c", {{"n", "2"}});
  // Release the jobs one by one in start order; each release lets exactly one job start.
  for (size_t i = 1; i <= 7; ++i) {
    {
      std::lock_guard lock(mutex);
      released = i;
      changed.notify_all();
    }
    if (i + 2 <= 7) {
      ASSERT_TRUE(wait_started(i + 2)) << "after releasing " << i;
    }
  }
  ASSERT_TRUE(h.service->wait_idle(20));
  const std::vector<std::string> expected = {"a:1", "b:1", "a:2", "b:2", "c:1", "a:3", "c:2"};
  EXPECT_EQ(started, expected);
  // The fairness promise, checked on the order itself: once a job is next in its device's
  // line (queued, and the device's previous job started), at most one job of each other
  // device starts before it. Every job from started[2] on was queued before it started.
  for (size_t i = 2; i < started.size(); ++i) {
    size_t from = 2;
    for (size_t k = 0; k < i; ++k) {
      if (started[k][0] == started[i][0]) from = std::max(from, k + 1);
    }
    std::map<char, int> ahead;
    for (size_t k = from; k < i; ++k) ++ahead[started[k][0]];
    for (const auto& [device, n] : ahead) {
      EXPECT_LE(n, 1) << started[i] << " waited behind " << n << " jobs of " << device;
    }
  }
  // A plain first-come order would have run a:2 and a:3 before c:1.
}

TEST(CustomizationJobs, QuotaEvictsTheOldestSamplesAndMetricsCountThem) {
  CustomizationOptions options = customization_default_options();
  options.max_samples_per_device = 3;
  Seen seen;
  Harness h(fake_runner(&seen), {}, options);
  CustomizationClient client(h.client_options());
  auto s = samples(5);
  EXPECT_EQ(client.upload_samples("cam", {s[0], s[1]}, {1, 28, 28}).stored, 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct file times
  auto ack = client.upload_samples("cam", {s[2], s[3], s[4]}, {1, 28, 28});
  EXPECT_EQ(ack.added, 3u);
  EXPECT_EQ(ack.stored, 3u);
  const auto dir = h.root / "cam" / "samples";
  EXPECT_FALSE(fs::exists(dir / (sha256_hex(s[0]) + ".u8")));
  EXPECT_FALSE(fs::exists(dir / (sha256_hex(s[1]) + ".u8")));
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(fs::exists(dir / (sha256_hex(s[i]) + ".u8"))) << i;
  // Another device has a quota of its own.
  EXPECT_EQ(client.upload_samples("other", {s[0]}, {1, 28, 28}).stored, 1u);
  // The job sees the kept samples only.
  ASSERT_EQ(client.wait_for_job(client.submit_job("cam", json::object())["id"], 20)["state"], "done");
  {
    std::lock_guard lock(seen.mutex);
    EXPECT_EQ(seen.jobs.at(0).sample_count(), 3u);
  }
  const std::string metrics = h.server->metrics_text();
  EXPECT_NE(metrics.find("edgefm_customization_samples{device=\"cam\"} 3"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("edgefm_customization_samples{device=\"other\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("edgefm_customization_samples_evicted_total{device=\"cam\"} 2"), std::string::npos);
  EXPECT_NE(metrics.find("edgefm_customization_jobs{state=\"queued\"} 0"), std::string::npos);
  EXPECT_NE(metrics.find("edgefm_customization_jobs{state=\"running\"} 0"), std::string::npos);
  // The same text over HTTP.
  auto res = h.raw(false)->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("edgefm_customization_samples_evicted_total{device=\"cam\"} 2"), std::string::npos);
}

TEST(CustomizationJobs, ALoweredQuotaAppliesWhenTheServiceStarts) {
  const fs::path root = fresh_dir("quota");
  auto s = samples(4);
  {
    Harness h(fake_runner(), {}, customization_default_options(), root);
    CustomizationClient client(h.client_options());
    for (const auto& sample : s) {
      client.upload_samples("cam", {sample}, {1, 28, 28});
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct file times
    }
  }
  CustomizationOptions options = customization_default_options();
  options.max_samples_per_device = 2;
  Harness h(fake_runner(), {}, options, root);
  EXPECT_EQ(h.service->sample_count("cam"), 2u);
  const auto dir = root / "cam" / "samples";
  EXPECT_FALSE(fs::exists(dir / (sha256_hex(s[0]) + ".u8")));
  EXPECT_FALSE(fs::exists(dir / (sha256_hex(s[1]) + ".u8")));
  EXPECT_TRUE(fs::exists(dir / (sha256_hex(s[3]) + ".u8")));
  EXPECT_NE(h.server->metrics_text().find("edgefm_customization_samples_evicted_total{device=\"cam\"} 2"),
            std::string::npos);
  fs::remove_all(root);
}

TEST(CustomizationJobs, MetricsShowJobsQueuedAndRunning) {
  Gate gate;
  Harness h(fake_runner(nullptr, &gate));
  CustomizationClient client(h.client_options());
  client.upload_samples("cam", views(samples(1)), {1, 28, 28});
  const std::string first = client.submit_job("cam", json::object())["id"];
  client.submit_job("cam", json::object());
  wait_until(client, first, "running");
  const std::string metrics = h.server->metrics_text();
  EXPECT_NE(metrics.find("edgefm_customization_jobs{state=\"queued\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("edgefm_customization_jobs{state=\"running\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("edgefm_customization_job_workers 1"), std::string::npos);
  gate.release();
  EXPECT_TRUE(h.service->wait_idle(20));
}

}  // namespace
}  // namespace edgefm::cloud
