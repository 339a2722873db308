// The edge runtime against a real in-process cloud service on 127.0.0.1. The edge model here
// is the cloud's own linear stand-in encoder (so edge and cloud agree on every class) with a
// calibration profile made for the test; runtime_model_test.cpp runs the real student and FM.
#include "edge/runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cloud/linear_model.h"
#include "cloud/server.h"
#include "net/link.h"
#include "route/similarity.h"

namespace edgefm::edge {
namespace {

const std::vector<std::string> kClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

cloud::LinearModelOptions stand_in_options(int64_t call_cost_us = 0) {
  cloud::LinearModelOptions o = cloud::linear_model_default_options();
  o.embedding_dim = 16;
  o.call_cost_us = call_cost_us;
  return o;
}

cloud::ServerOptions server_options(int port = 0) {
  cloud::ServerOptions o = cloud::server_default_options();
  o.port = port;
  o.max_batch = 8;
  o.max_queue_delay_us = 500;
  o.threads = 64;  // above the runtime's 32 keep-alive connections
  o.keep_alive_timeout_s = 2;
  return o;
}

std::vector<uint8_t> image_pixels(uint64_t i) {
  std::vector<uint8_t> pixels(784);
  uint32_t state = static_cast<uint32_t>(i * 2654435761u + 12345u);
  for (auto& p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  return pixels;
}

// The edge model: the stand-in encoder, its pool, the margin, and a profile on which more
// offload means more accuracy (edge right on confident samples only, the FM always right).
struct TestModel {
  models::FoundationModel fm = cloud::make_linear_foundation_model(stand_in_options(), kClasses);
  std::vector<float> scores;  // margin of image_pixels(i), i < 200

  TestModel() {
    auto encoder = fm.image;
    for (uint64_t i = 0; i < 200; ++i) scores.push_back(score_of(image_pixels(i)));
  }

  float score_of(const std::vector<uint8_t>& pixels) const {
    std::vector<float> image(pixels.size());
    for (size_t j = 0; j < pixels.size(); ++j) image[j] = pixels[j] / 255.0f;
    std::vector<float> embedding(16), sims(kClasses.size());
    fm.image->embed(image.data(), 1, embedding.data());
    route::cosine_similarities(embedding.data(), 1, fm.pool.data(),
                               static_cast<int>(fm.pool.size()), 16, sims.data());
    return route::margin(sims.data(), static_cast<int>(fm.pool.size()));
  }

  float median_score() const {
    std::vector<float> s = scores;
    std::nth_element(s.begin(), s.begin() + 100, s.end());
    return s[100];
  }

  EdgeModel edge_model(const std::string& version = "test-v1") const {
    EdgeModel m;
    m.encoder = fm.image;
    m.pool = fm.pool;
    m.score = route::make_score("margin");
    std::vector<route::CalibrationSample> samples;
    const float median = median_score();
    for (float s : scores) samples.push_back({s, s >= median, true});
    m.calibration = route::build_profile(samples, 50, "margin");
    m.t_edge_ms = 0.05;
    m.version = version;
    return m;
  }
};

// Records every answer; checks nobody answers twice.
struct Recorder {
  std::mutex mutex;
  std::map<uint64_t, Answer> answers;
  int duplicates = 0;

  EdgeRuntime::AnswerSink sink() {
    return [this](const Answer& a) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!answers.emplace(a.id, a).second) ++duplicates;
    };
  }
  size_t count(AnswerRoute route) {
    std::lock_guard<std::mutex> lock(mutex);
    return static_cast<size_t>(std::count_if(answers.begin(), answers.end(), [&](const auto& kv) {
      return kv.second.route == route;
    }));
  }
};

RuntimeOptions options_for(Policy policy, const std::string& url) {
  RuntimeOptions o = runtime_default_options();
  o.policy = policy;
  o.client.url = url;
  o.l_app_ms = 50.0;
  o.cloud_timeout_ms = 2000.0;
  o.estimator.nominal_rtt_ms = 1.0;
  o.estimator.nominal_uplink_bps = 100e6;
  o.nominal_cloud_ms = 1.0;
  o.breaker_cooldown_ms = 100.0;
  return o;
}

Sample sample_at(uint64_t id, const std::string& truth = "") {
  return {id, image_pixels(id), truth, Clock::now()};
}

// Feeds samples [first, last) one every `gap`.
void feed(EdgeRuntime& runtime, uint64_t first, uint64_t last,
          std::chrono::milliseconds gap = std::chrono::milliseconds(1)) {
  for (uint64_t i = first; i < last; ++i) {
    runtime.process(sample_at(i));
    std::this_thread::sleep_for(gap);
  }
}

TEST(EdgeRuntime, PolicyNamesRoundTrip) {
  for (const auto& name : policy_names()) EXPECT_EQ(policy_name(parse_policy(name)), name);
  EXPECT_THROW(parse_policy("sometimes"), Error);
}

TEST(EdgeRuntime, EdgeOnlyNeverCallsTheCloud) {
  TestModel model;
  Recorder recorder;
  // Nothing listens on this URL: edge-only must not care.
  RuntimeOptions o = options_for(Policy::edge_only, "http://127.0.0.1:9");
  {
    EdgeRuntime runtime(model.edge_model(), o, recorder.sink());
    for (uint64_t i = 0; i < 50; ++i) runtime.process(sample_at(i, kClasses[i % 10]));
    runtime.drain();
    RuntimeStats s = runtime.stats();
    EXPECT_EQ(s.edge, 50);
    EXPECT_EQ(s.cloud_calls, 0);
    EXPECT_EQ(s.bytes_up, 0);
    EXPECT_TRUE(std::isinf(s.threshold) && s.threshold < 0);
  }
  ASSERT_EQ(recorder.answers.size(), 50u);
  for (const auto& [id, a] : recorder.answers) {
    EXPECT_EQ(a.route, AnswerRoute::edge);
    EXPECT_EQ(a.bytes_sent, 0);
    EXPECT_EQ(a.correct, a.prediction == kClasses[id % 10]);
    EXPECT_GE(a.latency_ms, 0.0);
    EXPECT_EQ(a.model_version, "test-v1");
  }
}

TEST(EdgeRuntime, CloudOnlyAnswersEverySampleFromTheCloud) {
  TestModel model;
  cloud::CloudServer server(model.fm, server_options());
  Recorder recorder;
  {
    EdgeRuntime runtime(model.edge_model(), options_for(Policy::cloud_only, server.url()),
                        recorder.sink());
    feed(runtime, 0, 60);
    runtime.drain();
    RuntimeStats s = runtime.stats();
    EXPECT_EQ(s.cloud, 60);
    EXPECT_EQ(s.cloud_calls, 60);
    EXPECT_GT(s.bytes_up, 60 * 784);
    EXPECT_EQ(s.network.samples, 60u);
  }
  ASSERT_EQ(recorder.answers.size(), 60u);
  EXPECT_EQ(recorder.duplicates, 0);
  for (const auto& [id, a] : recorder.answers) {
    EXPECT_EQ(a.route, AnswerRoute::cloud) << a.fallback_reason;
    EXPECT_GT(a.bytes_sent, 784);
    EXPECT_GE(a.cloud_ms, 0.0);
    EXPECT_GE(a.latency_ms, a.cloud_ms * 0.99);
    // The stand-in cloud and the edge share the encoder: same class.
    EXPECT_GE(a.prediction_index, 0);
  }
}

TEST(EdgeRuntime, FixedThresholdSplitsByScoreAndAnswersEachSampleOnce) {
  TestModel model;
  cloud::CloudServer server(model.fm, server_options());
  Recorder recorder;
  RuntimeOptions o = options_for(Policy::fixed, server.url());
  o.fixed_threshold = model.median_score();
  o.max_in_flight = 4;
  {
    EdgeRuntime runtime(model.edge_model(), o, recorder.sink());
    // As fast as the caller can: the cloud calls pile up behind four workers.
    for (uint64_t i = 0; i < 200; ++i) runtime.process(sample_at(i));
    runtime.drain();
    RuntimeStats s = runtime.stats();
    EXPECT_EQ(s.processed, 200);
    EXPECT_EQ(s.answered, 200);
    EXPECT_EQ(s.edge + s.cloud + s.fallback, 200);
  }
  ASSERT_EQ(recorder.answers.size(), 200u);
  EXPECT_EQ(recorder.duplicates, 0);
  for (const auto& [id, a] : recorder.answers) {
    const bool confident = model.scores[id] >= model.median_score();
    EXPECT_EQ(a.route == AnswerRoute::edge, confident) << id;
    EXPECT_EQ(a.threshold, model.median_score());
    EXPECT_FLOAT_EQ(a.score, model.scores[id]);
  }
  EXPECT_EQ(recorder.count(AnswerRoute::cloud), 100u);
}

TEST(EdgeRuntime, SlowCloudFallsBackAtTheDeadlineWithoutBlockingEdgeAnswers) {
  TestModel model;
  // Every FM call sleeps 400 ms; the runtime gives the cloud 100 ms.
  models::FoundationModel slow = cloud::make_linear_foundation_model(stand_in_options(400000), kClasses);
  cloud::CloudServer server(slow, server_options());
  Recorder recorder;
  RuntimeOptions o = options_for(Policy::fixed, server.url());
  o.fixed_threshold = model.median_score();
  o.cloud_timeout_ms = 100.0;
  o.max_in_flight = 2;
  RuntimeStats s;
  size_t answered_inline = 0, confident = 0;
  {
    EdgeRuntime runtime(model.edge_model(), o, recorder.sink());
    for (uint64_t i = 0; i < 40; ++i) {
      runtime.process(sample_at(i));
      // A confident sample is answered before process() returns, stuck cloud calls or not.
      if (model.scores[i] >= model.median_score()) {
        ++confident;
        std::lock_guard<std::mutex> lock(recorder.mutex);
        answered_inline += recorder.answers.count(i);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    runtime.drain();
    s = runtime.stats();
  }
  EXPECT_GT(confident, 0u);
  EXPECT_EQ(answered_inline, confident);
  ASSERT_EQ(recorder.answers.size(), 40u);
  EXPECT_EQ(recorder.duplicates, 0);
  size_t timeouts = 0;
  for (const auto& [id, a] : recorder.answers) {
    if (model.scores[id] >= model.median_score()) {
      EXPECT_EQ(a.route, AnswerRoute::edge);
    } else {
      EXPECT_EQ(a.route, AnswerRoute::fallback);
      EXPECT_GE(a.latency_ms, 99.0);
      timeouts += a.fallback_reason == "timeout";
      // The fallback is the edge's own answer.
      EXPECT_GE(a.prediction_index, 0);
    }
  }
  EXPECT_GT(timeouts, 0u);
}

TEST(EdgeRuntime, CloudKilledMidStreamFallsBackThenResumesWhenRestarted) {
  TestModel model;
  auto server = std::make_unique<cloud::CloudServer>(model.fm, server_options());
  const int port = server->port();
  Recorder recorder;
  RuntimeOptions o = options_for(Policy::cloud_only, server->url());
  o.cloud_timeout_ms = 500.0;
  EdgeRuntime runtime(model.edge_model(), o, recorder.sink());

  feed(runtime, 0, 40);
  runtime.drain();
  EXPECT_EQ(recorder.count(AnswerRoute::cloud), 40u);

  server->stop();  // the cloud dies mid-stream
  server.reset();
  feed(runtime, 40, 100, std::chrono::milliseconds(2));
  runtime.drain();
  {
    std::lock_guard<std::mutex> lock(recorder.mutex);
    for (uint64_t i = 40; i < 100; ++i) {
      ASSERT_TRUE(recorder.answers.count(i)) << i;
      EXPECT_EQ(recorder.answers[i].route, AnswerRoute::fallback) << i;
    }
  }

  // The cloud comes back on the same address; routing to it resumes after the cool-down.
  server = std::make_unique<cloud::CloudServer>(model.fm, server_options(port));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  feed(runtime, 100, 160, std::chrono::milliseconds(2));
  runtime.drain();
  size_t resumed = 0;
  {
    std::lock_guard<std::mutex> lock(recorder.mutex);
    for (uint64_t i = 100; i < 160; ++i) resumed += recorder.answers[i].route == AnswerRoute::cloud;
  }
  EXPECT_GE(resumed, 50u);
  EXPECT_EQ(recorder.answers.size(), 160u);
  EXPECT_EQ(recorder.duplicates, 0);
  RuntimeStats s = runtime.stats();
  EXPECT_EQ(s.edge + s.cloud + s.fallback, 160);
  EXPECT_GT(s.cloud_failures, 0);
}

TEST(EdgeRuntime, ThresholdIsSearchedAgainWhenTheNetworkEstimateMoves) {
  TestModel model;
  cloud::CloudServer server(model.fm, server_options());
  // The real path has a 40 ms one-way delay; the nominal network said 1 ms RTT.
  net::LinkOptions link_options = net::link_default_options();
  link_options.upstream_port = static_cast<uint16_t>(server.port());
  link_options.delay_ms = 40;
  net::LinkEmulator link(link_options);

  Recorder recorder;
  RuntimeOptions o =
      options_for(Policy::edgefm, "http://127.0.0.1:" + std::to_string(link.port()));
  o.l_app_ms = 20.0;  // half the samples to the cloud fit at the nominal 1 ms RTT, not at 80 ms
  o.cloud_timeout_ms = 1000.0;
  EdgeRuntime runtime(model.edge_model(), o, recorder.sink());
  // At the nominal network the profile's best accuracy (offloading the less confident half)
  // fits the budget.
  const double first_threshold = runtime.stats().threshold;
  EXPECT_NEAR(runtime.threshold_events().front().choice.offload_ratio, 0.5, 0.05);

  feed(runtime, 0, 120, std::chrono::milliseconds(5));
  runtime.drain();
  RuntimeStats s = runtime.stats();
  EXPECT_GE(s.threshold_searches, 2);
  EXPECT_GT(s.network.rtt_ms, 70.0);
  EXPECT_LT(s.threshold, first_threshold);
  auto events = runtime.threshold_events();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.front().reason, "start");
  EXPECT_EQ(events.back().reason, "network");
  EXPECT_GT(events.back().latency.rtt_ms, 70.0);
  // The threshold in force follows: later samples stay on the edge more often.
  size_t late_edge = 0;
  for (uint64_t i = 80; i < 120; ++i) late_edge += recorder.answers[i].route == AnswerRoute::edge;
  EXPECT_GT(late_edge, 10u);
  EXPECT_EQ(recorder.answers.size(), 120u);
}

TEST(EdgeRuntime, EdgefmProbesTheCloudWhileKeepingEverythingOnTheEdge) {
  TestModel model;
  cloud::CloudServer server(model.fm, server_options());
  Recorder recorder;
  RuntimeOptions o = options_for(Policy::edgefm, server.url());
  o.l_app_ms = 0.01;  // below t_edge: no threshold fits, everything stays on the edge
  o.probe_interval_ms = 20.0;
  EdgeRuntime runtime(model.edge_model(), o, recorder.sink());
  feed(runtime, 0, 60, std::chrono::milliseconds(3));
  runtime.drain();
  RuntimeStats s = runtime.stats();
  EXPECT_EQ(s.edge, 60);
  EXPECT_GT(s.probes, 0);
  EXPECT_GT(s.bytes_up, 0);
  EXPECT_GT(s.network.samples, 0u);
  size_t probes = 0;
  for (const auto& [id, a] : recorder.answers) probes += a.probe;
  EXPECT_EQ(static_cast<int64_t>(probes), s.probes);
}

TEST(EdgeRuntime, SwapModelKeepsEverySample) {
  TestModel model;
  cloud::CloudServer server(model.fm, server_options());
  Recorder recorder;
  RuntimeOptions o = options_for(Policy::fixed, server.url());
  o.fixed_threshold = model.median_score();
  EdgeRuntime runtime(model.edge_model("v1"), o, recorder.sink());
  std::thread feeder([&] { feed(runtime, 0, 100); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  runtime.swap_model(model.edge_model("v2"));
  feeder.join();
  runtime.drain();
  ASSERT_EQ(recorder.answers.size(), 100u);
  EXPECT_EQ(recorder.duplicates, 0);
  EXPECT_EQ(recorder.answers[0].model_version, "v1");
  EXPECT_EQ(recorder.answers[99].model_version, "v2");
}

TEST(EdgeRuntime, RejectsWhatItCannotRun) {
  TestModel model;
  Recorder recorder;
  RuntimeOptions o = options_for(Policy::edgefm, "http://127.0.0.1:9");
  EdgeModel no_profile = model.edge_model();
  no_profile.calibration = {};
  EXPECT_THROW(EdgeRuntime(std::move(no_profile), o, recorder.sink()), Error);
  o.l_app_ms = 0.0;
  EXPECT_THROW(EdgeRuntime(model.edge_model(), o, recorder.sink()), Error);
  o = options_for(Policy::edge_only, "http://127.0.0.1:9");
  EdgeRuntime runtime(model.edge_model(), o, recorder.sink());
  Sample wrong = sample_at(1);
  wrong.pixels.resize(100);
  EXPECT_THROW(runtime.process(std::move(wrong)), Error);
  runtime.drain();  // the rejected sample is not waited for
}

}  // namespace
}  // namespace edgefm::edge
