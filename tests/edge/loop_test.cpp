// The edge's customization loop against a real in-process customization service (HTTP, a
// fake job runner): selective upload through the durable queue, disagreement-triggered jobs,
// and a dead cloud that only delays uploads.
#include "edge/loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "cloud/customization.h"
#include "cloud/linear_model.h"
#include "cloud/server.h"
#include "edge/upload_queue.h"
#include "support/temp_dir.h"

namespace edgefm::edge {
namespace {
namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) { return testing::fresh_dir("loop", name); }

std::vector<uint8_t> pixels(uint64_t i) {
  std::vector<uint8_t> p(784);
  uint32_t state = static_cast<uint32_t>(i * 2654435761u + 3u);
  for (auto& x : p) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<uint8_t>(state >> 24);
  }
  return p;
}

struct Service {
  fs::path root = fresh_dir("svc");
  models::FoundationModel fm;
  std::atomic<int> jobs_run{0};
  std::unique_ptr<cloud::CustomizationService> service;
  std::unique_ptr<cloud::CloudServer> server;

  Service() {
    cloud::LinearModelOptions m = cloud::linear_model_default_options();
    m.embedding_dim = 8;
    fm = cloud::make_linear_foundation_model(m, {"a", "b", "c"});
    cloud::CustomizationOptions c = cloud::customization_default_options();
    c.root = root;
    c.sample_shape = {1, 28, 28};
    service = std::make_unique<cloud::CustomizationService>(
        c, [this](const cloud::CustomizationJob& job, const cloud::JobProgress& progress) -> json {
          progress(0.5, "halfway");
          std::ofstream(job.output, std::ios::binary) << "artifact v" << job.version;
          ++jobs_run;
          return {{"arch", "tiny-cnn"}, {"samples_seen", job.sample_count()}};
        });
    cloud::ServerOptions s = cloud::server_default_options();
    s.threads = 8;
    server = std::make_unique<cloud::CloudServer>(
        fm, s, std::vector<cloud::ServerExtension>{service->extension()});
  }
  ~Service() {
    server->stop();
    service->stop();
    fs::remove_all(root);
  }
};

struct Events {
  std::mutex mutex;
  std::vector<json> all;
  CustomizationLoop::EventSink sink() {
    return [this](const json& e) {
      std::lock_guard<std::mutex> lock(mutex);
      all.push_back(e);
    };
  }
  size_t count(const std::string& kind) {
    std::lock_guard<std::mutex> lock(mutex);
    return static_cast<size_t>(std::count_if(all.begin(), all.end(), [&](const json& e) {
      return e.value("event", "") == kind;
    }));
  }
  bool wait_for(const std::string& kind, double seconds) {
    for (int i = 0; i < static_cast<int>(seconds * 50); ++i) {
      if (count(kind) > 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
};

LoopOptions loop_options(const fs::path& dir, const std::string& url) {
  LoopOptions o = loop_default_options();
  o.device = "dev-1";
  o.queue_path = dir / "uploads.sqlite";
  o.client.url = url;
  o.client.read_timeout_s = 5.0;
  o.client.connect_timeout_s = 0.5;
  o.client.max_retries = 0;
  o.selector.strategy = customize::SelectionStrategy::lowest_margin;
  o.selector.upload_threshold = 0.2f;
  o.selector.samples_per_minute = 6000.0;
  o.selector.uplink_kbps = 100000.0;
  o.selector.window_size = 4;
  o.upload_interval_s = 0.05;
  o.retry_s = 0.1;
  o.job_request = {{"profile", "anything: the fake runner does not read it"}};
  o.job_min_new = 10;
  o.drift_upload_s = 60.0;
  return o;
}

// Observation i: score `score`, a 2-d embedding spread on a circle, routed with `threshold`.
void observe(CustomizationLoop& loop, uint64_t i, float score, double threshold = 0.0,
             double expected_offload = std::numeric_limits<double>::quiet_NaN()) {
  const std::vector<uint8_t> p = pixels(i);
  const float embedding[2] = {static_cast<float>(i % 7), static_cast<float>(i % 5)};
  EdgeObservation o;
  o.id = i;
  o.pixels = &p;
  o.embedding = embedding;
  o.dim = 2;
  o.score = score;
  o.threshold = threshold;
  o.to_cloud = score < threshold;
  o.expected_offload = expected_offload;
  loop.observe(o);
}

AuditResult audit(uint64_t id, bool agree) {
  AuditResult a;
  a.id = id;
  a.edge_prediction = "a";
  a.cloud_prediction = agree ? "a" : "b";
  a.agree = agree;
  return a;
}

TEST(CustomizationLoop, UploadsOnlyUnsureSamplesAndTheServiceStoresThem) {
  Service svc;
  const fs::path dir = fresh_dir("upload");
  Events events;
  LoopOptions o = loop_options(dir, svc.server->url());
  o.jobs = false;
  {
    CustomizationLoop loop(o, {1, 28, 28}, 2, events.sink());
    // 40 confident samples, 20 unsure ones.
    for (uint64_t i = 0; i < 60; ++i) observe(loop, i, i % 3 == 0 ? 0.05f : 0.9f);
    ASSERT_TRUE(loop.flush(10.0));
    const LoopStats s = loop.stats();
    EXPECT_EQ(s.observed, 60u);
    EXPECT_EQ(s.selected, 20u);  // budget is not binding: every candidate goes
    EXPECT_EQ(s.acknowledged, 20u);
    EXPECT_EQ(s.pending, 0u);
  }
  EXPECT_EQ(svc.service->sample_count("dev-1"), 20u);
  EXPECT_GT(events.count("uploaded"), 0u);
  EXPECT_EQ(svc.jobs_run.load(), 0);
  fs::remove_all(dir);
}

// With upload_routed the candidates are what the runtime routed to the cloud, whatever the
// score's scale: here scores are negative distances and the routing threshold moves.
TEST(CustomizationLoop, UploadRoutedFollowsTheRoutingThreshold) {
  Service svc;
  const fs::path dir = fresh_dir("routed");
  LoopOptions o = loop_options(dir, svc.server->url());
  o.jobs = false;
  o.upload_routed = true;  // selector.upload_threshold (0.2) is ignored
  {
    CustomizationLoop loop(o, {1, 28, 28}, 2, {});
    // Threshold -10: scores -12 (routed) and -5 (edge); 10 of 30 are routed.
    for (uint64_t i = 0; i < 30; ++i) observe(loop, i, i % 3 == 0 ? -12.0f : -5.0f, -10.0);
    // The threshold moves to -4: now every sample of the next 12 is routed.
    for (uint64_t i = 30; i < 42; ++i) observe(loop, i, -5.0f, -4.0);
    ASSERT_TRUE(loop.flush(10.0));
    EXPECT_EQ(loop.stats().selected, 22u);
  }
  EXPECT_EQ(svc.service->sample_count("dev-1"), 22u);
  fs::remove_all(dir);
}

// Offload drift: the runtime routes far more to the cloud than the calibration predicted.
TEST(CustomizationLoop, ARiseInTheRoutedShareIsDriftWithoutAnyAudit) {
  Service svc;
  const fs::path dir = fresh_dir("offload");
  Events events;
  LoopOptions o = loop_options(dir, svc.server->url());
  o.jobs = false;
  {
    CustomizationLoop loop(o, {1, 28, 28}, 2, events.sink());
    // 20 % predicted, 10 % routed for 300 samples: quiet.
    uint64_t id = 0;
    for (; id < 300; ++id) observe(loop, id, id % 10 == 0 ? 0.1f : 0.9f, 0.5, 0.2);
    EXPECT_EQ(loop.stats().drifts, 0u);
    // Without a prediction nothing is tested, however much is routed.
    for (; id < 400; ++id) observe(loop, id, 0.1f, 0.5);
    EXPECT_EQ(loop.stats().drifts, 0u);
    // Everything routed: log(0.5 / 0.2) = 0.92 a sample, past 15 within 17 samples.
    for (; id < 420; ++id) observe(loop, id, 0.1f, 0.5, 0.2);
    EXPECT_EQ(loop.stats().drifts, 1u);
    EXPECT_EQ(loop.stats().offload_drift.at("detections"), 1);
    ASSERT_TRUE(loop.flush(10.0));
  }
  EXPECT_EQ(events.count("drift"), 1u);
  fs::remove_all(dir);
}

TEST(CustomizationLoop, DisagreementOnAuditsTriggersUploadOfEverythingAndAJob) {
  Service svc;
  const fs::path dir = fresh_dir("drift");
  Events events;
  LoopOptions o = loop_options(dir, svc.server->url());
  CustomizationLoop loop(o, {1, 28, 28}, 2, events.sink());
  // Confident samples and agreeing audits: nothing to upload, no job.
  uint64_t id = 0;
  for (; id < 40; ++id) {
    observe(loop, id, 0.9f);
    if (id % 4 == 0) loop.audited(audit(id, true));
  }
  loop.flush(5.0);
  EXPECT_EQ(loop.stats().acknowledged, 0u);
  EXPECT_EQ(events.count("drift"), 0u);
  // The same confident margins, but the FM disagrees: drift.
  for (int k = 0; k < 3; ++k) loop.audited(audit(id + static_cast<uint64_t>(k), false));
  ASSERT_EQ(events.count("drift"), 1u);
  // Now every sample is a candidate; the job starts after job_min_new acknowledged uploads.
  for (; id < 80; ++id) observe(loop, id, 0.9f);
  loop.flush(10.0);
  EXPECT_GE(loop.stats().acknowledged, 10u);
  ASSERT_TRUE(events.wait_for("job_done", 20.0));
  EXPECT_EQ(svc.jobs_run.load(), 1);
  const LoopStats s = loop.stats();
  EXPECT_EQ(s.drifts, 1u);
  EXPECT_EQ(s.jobs_submitted, 1u);
  EXPECT_EQ(s.jobs_done, 1u);
  ASSERT_TRUE(svc.service->latest_artifact("dev-1").has_value());
  fs::remove_all(dir);
}

TEST(CustomizationLoop, WithoutAuditsAJobWaitsForTheUploadTrigger) {
  Service svc;
  const fs::path dir = fresh_dir("trigger");
  Events events;
  LoopOptions o = loop_options(dir, svc.server->url());
  o.uploads_trigger = 15;
  o.job_min_new = 1;
  CustomizationLoop loop(o, {1, 28, 28}, 2, events.sink());
  for (uint64_t id = 0; id < 10; ++id) observe(loop, id, 0.05f);
  loop.flush(5.0);
  EXPECT_EQ(events.count("upload_trigger"), 0u);
  for (uint64_t id = 10; id < 20; ++id) observe(loop, id, 0.05f);
  loop.flush(5.0);
  EXPECT_EQ(events.count("upload_trigger"), 1u);
  ASSERT_TRUE(events.wait_for("job_done", 20.0));
  EXPECT_EQ(svc.jobs_run.load(), 1);
  fs::remove_all(dir);
}

TEST(CustomizationLoop, ADeadCloudKeepsUploadsQueuedForTheNextRun) {
  const fs::path dir = fresh_dir("dead");
  Events events;
  // Nothing listens on port 9.
  LoopOptions o = loop_options(dir, "http://127.0.0.1:9");
  o.jobs = false;
  {
    CustomizationLoop loop(o, {1, 28, 28}, 2, events.sink());
    for (uint64_t i = 0; i < 12; ++i) observe(loop, i, 0.05f);
    EXPECT_FALSE(loop.flush(0.5));
    EXPECT_GT(events.count("upload_failed"), 0u);
    EXPECT_EQ(loop.stats().acknowledged, 0u);
  }
  // A later run with a live service sends what the first one selected.
  Service svc;
  o.client.url = svc.server->url();
  {
    UploadQueue queue(o.queue_path);
    EXPECT_EQ(queue.size(), 12u);
  }
  {
    CustomizationLoop loop(o, {1, 28, 28}, 2, events.sink());
    ASSERT_TRUE(loop.flush(10.0));
    EXPECT_EQ(loop.stats().acknowledged, 12u);
  }
  EXPECT_EQ(svc.service->sample_count("dev-1"), 12u);
  fs::remove_all(dir);
}

TEST(CustomizationLoop, RejectsBadOptions) {
  const fs::path dir = fresh_dir("bad");
  LoopOptions o = loop_options(dir, "http://127.0.0.1:9");
  o.queue_path.clear();
  EXPECT_THROW(CustomizationLoop(o, {1, 28, 28}, 2), Error);
  o = loop_options(dir, "http://127.0.0.1:9");
  o.job_request = json::array();
  EXPECT_THROW(CustomizationLoop(o, {1, 28, 28}, 2), Error);
  o = loop_options(dir, "http://127.0.0.1:9");
  o.upload_batch = 0;
  EXPECT_THROW(CustomizationLoop(o, {1, 28, 28}, 2), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm::edge
