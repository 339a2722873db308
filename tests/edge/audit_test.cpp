// Audit sampling, the cloud-query budget and the drift detector, against a real in-process
// cloud service (the linear stand-in FM; the edge runs the same encoder, so it agrees with the
// cloud unless the test renames its classes).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#include "cloud/linear_model.h"
#include "cloud/server.h"
#include "common/error.h"
#include "edge/drift.h"
#include "edge/runtime.h"

namespace edgefm::edge {
namespace {

const std::vector<std::string> kClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

struct Cloud {
  models::FoundationModel fm;
  std::unique_ptr<cloud::CloudServer> server;
  Cloud() {
    cloud::LinearModelOptions m = cloud::linear_model_default_options();
    m.embedding_dim = 16;
    fm = cloud::make_linear_foundation_model(m, kClasses);
    cloud::ServerOptions s = cloud::server_default_options();
    s.max_batch = 8;
    s.max_queue_delay_us = 500;
    s.threads = 48;
    server = std::make_unique<cloud::CloudServer>(fm, s);
  }
};

// The cloud's encoder on the edge, with a profile; `renamed` shifts every class name by one,
// so the edge always disagrees with the cloud.
EdgeModel edge_model(const Cloud& cloud, bool renamed = false) {
  EdgeModel m;
  m.encoder = cloud.fm.image;
  if (renamed) {
    models::TextPool pool(cloud.fm.pool.dim());
    for (size_t i = 0; i < cloud.fm.pool.size(); ++i) {
      const float* v = cloud.fm.pool.vector(i);
      pool.set(kClasses[(i + 1) % kClasses.size()], std::vector<float>(v, v + pool.dim()));
    }
    m.pool = pool;
  } else {
    m.pool = cloud.fm.pool;
  }
  m.score = route::make_score("margin");
  std::vector<route::CalibrationSample> samples;
  for (int i = 0; i < 100; ++i) samples.push_back({static_cast<float>(i) / 100.0f, i > 30, true});
  m.calibration = route::build_profile(samples, 20, "margin");
  m.t_edge_ms = 0.05;
  m.version = "v1";
  return m;
}

std::vector<uint8_t> pixels(uint64_t i) {
  std::vector<uint8_t> p(784);
  uint32_t state = static_cast<uint32_t>(i * 2654435761u + 7u);
  for (auto& x : p) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<uint8_t>(state >> 24);
  }
  return p;
}

RuntimeOptions options(Policy policy, const std::string& url) {
  RuntimeOptions o = runtime_default_options();
  o.policy = policy;
  o.client.url = url;
  o.l_app_ms = 0.01;  // below t_edge: the edgefm policy keeps every sample on the edge
  o.cloud_timeout_ms = 5000.0;
  o.probe_interval_ms = 0.0;
  o.estimator.nominal_rtt_ms = 1.0;
  o.estimator.nominal_uplink_bps = 100e6;
  return o;
}

struct Recorder {
  std::mutex mutex;
  std::map<uint64_t, Answer> answers;
  std::vector<AuditResult> audits;
  int duplicates = 0;
  EdgeRuntime::AnswerSink sink() {
    return [this](const Answer& a) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!answers.emplace(a.id, a).second) ++duplicates;
    };
  }
  std::function<void(const AuditResult&)> audit_sink() {
    return [this](const AuditResult& a) {
      std::lock_guard<std::mutex> lock(mutex);
      audits.push_back(a);
    };
  }
};

void feed(EdgeRuntime& runtime, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) runtime.process({i, pixels(i), "", Clock::now()});
  runtime.drain();
}

TEST(Audit, AuditsAboutTheConfiguredShareOfEdgeAnswersAndReportsAgreement) {
  Cloud cloud;
  Recorder recorder;
  RuntimeOptions o = options(Policy::edgefm, cloud.server->url());
  o.audit_fraction = 0.1;
  o.audit_per_minute = 1e6;
  o.on_audit = recorder.audit_sink();
  std::atomic<int> observed{0}, routed{0};
  std::atomic<double> expected{-1.0};
  o.observer = [&](const EdgeObservation& e) {
    ++observed;
    routed += e.to_cloud;
    expected = e.expected_offload;
  };
  RuntimeStats s;
  {
    EdgeRuntime runtime(edge_model(cloud), o, recorder.sink());
    feed(runtime, 1000);
    // Every observation carries the offload the threshold in force was predicted to give.
    EXPECT_EQ(observed.load(), 1000);
    EXPECT_EQ(routed.load(), 0);
    EXPECT_DOUBLE_EQ(expected.load(), runtime.threshold_events().back().choice.offload_ratio);
    // Audits finish after their answer: wait for the calls.
    for (int i = 0; i < 1000; ++i) {
      s = runtime.stats();
      if (s.audits_answered == s.audits) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_EQ(s.edge, 1000);
  // Binomial(1000, 0.1): 100 +- 9.5; 4 sigma.
  EXPECT_GE(s.audits, 62);
  EXPECT_LE(s.audits, 138);
  EXPECT_EQ(s.audits_answered, s.audits);
  EXPECT_EQ(s.audit_disagreements, 0);  // same encoder, same names
  size_t flagged = 0;
  for (const auto& [id, a] : recorder.answers) {
    flagged += a.audit;
    EXPECT_EQ(a.route, AnswerRoute::edge);  // an audit never changes the answer
  }
  EXPECT_EQ(static_cast<int64_t>(flagged), s.audits);
  ASSERT_EQ(static_cast<int64_t>(recorder.audits.size()), s.audits);
  for (const auto& a : recorder.audits) {
    EXPECT_TRUE(a.agree);
    EXPECT_EQ(a.edge_prediction, a.cloud_prediction);
    EXPECT_EQ(recorder.answers.at(a.id).prediction, a.edge_prediction);
  }
}

TEST(Audit, DisagreementsAreReportedAndCounted) {
  Cloud cloud;
  Recorder recorder;
  RuntimeOptions o = options(Policy::edgefm, cloud.server->url());
  o.audit_fraction = 0.5;
  o.audit_per_minute = 1e6;
  o.on_audit = recorder.audit_sink();
  RuntimeStats s;
  {
    EdgeRuntime runtime(edge_model(cloud, /*renamed=*/true), o, recorder.sink());
    feed(runtime, 100);
    for (int i = 0; i < 1000 && runtime.stats().audits_answered < runtime.stats().audits; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    s = runtime.stats();
  }
  ASSERT_GT(s.audits, 20);
  EXPECT_EQ(s.audit_disagreements, s.audits_answered);
  for (const auto& a : recorder.audits) EXPECT_FALSE(a.agree);
}

TEST(Audit, RateLimitCapsAuditsUnderASteadyStream) {
  Cloud cloud;
  Recorder recorder;
  RuntimeOptions o = options(Policy::edgefm, cloud.server->url());
  o.audit_fraction = 1.0;     // every edge answer would be audited ...
  o.audit_per_minute = 60.0;  // ... but the bucket holds 10 and refills 1 a second
  const auto start = Clock::now();
  RuntimeStats s;
  {
    EdgeRuntime runtime(edge_model(cloud), o, recorder.sink());
    for (uint64_t i = 0; i < 300; ++i) {
      runtime.process({i, pixels(i), "", Clock::now()});
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    runtime.drain();
    s = runtime.stats();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(s.edge, 300);
  EXPECT_GE(s.audits, 10);
  EXPECT_LE(static_cast<double>(s.audits), 10.0 + seconds * 1.0 + 1.0);
}

TEST(Audit, CloudQueryBudgetAnswersTheRestOnTheEdgeMarkedBudget) {
  Cloud cloud;
  Recorder recorder;
  RuntimeOptions o = options(Policy::cloud_only, cloud.server->url());
  o.cloud_queries_per_minute = 30.0;  // a bucket of 30, refilled at 0.5 a second
  const auto start = Clock::now();
  RuntimeStats s;
  {
    EdgeRuntime runtime(edge_model(cloud), o, recorder.sink());
    feed(runtime, 100);
    s = runtime.stats();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // A call that fails on a loaded machine is answered as fallback; it still counts against
  // the budget, as every started call does.
  EXPECT_EQ(s.cloud + s.fallback + s.budget, 100);
  EXPECT_GE(s.cloud_calls, 30);
  EXPECT_LE(static_cast<double>(s.cloud_calls), 30.0 + 0.5 * seconds + 1.0);
  EXPECT_GE(s.cloud_calls, s.cloud);
  EXPECT_LE(s.cloud_calls, s.cloud + s.fallback);
  EXPECT_GT(s.budget, 0);
  ASSERT_EQ(recorder.answers.size(), 100u);
  EXPECT_EQ(recorder.duplicates, 0);
  size_t budget = 0;
  for (const auto& [id, a] : recorder.answers) {
    if (a.route != AnswerRoute::budget) continue;
    ++budget;
    EXPECT_EQ(answer_to_json(a)["route"], "budget");
    EXPECT_FALSE(a.prediction.empty());  // the edge's answer
    EXPECT_EQ(a.bytes_sent, 0);
  }
  EXPECT_EQ(static_cast<int64_t>(budget), s.budget);
}

TEST(Audit, RejectsBadAuditAndBudgetOptions) {
  Cloud cloud;
  Recorder recorder;
  RuntimeOptions o = options(Policy::edgefm, cloud.server->url());
  o.audit_fraction = 1.5;
  EXPECT_THROW(EdgeRuntime(edge_model(cloud), o, recorder.sink()), Error);
  o.audit_fraction = 0.1;
  o.audit_per_minute = 0.0;
  EXPECT_THROW(EdgeRuntime(edge_model(cloud), o, recorder.sink()), Error);
  o = options(Policy::edgefm, cloud.server->url());
  o.cloud_queries_per_minute = -1.0;
  EXPECT_THROW(EdgeRuntime(edge_model(cloud), o, recorder.sink()), Error);
}

TEST(DriftDetector, QuietAtTheBaselineRate) {
  DriftDetector d;  // p0 0.05, p1 0.3, threshold 4
  // One disagreement in every 20 audits, for 4000 audits.
  for (int i = 0; i < 4000; ++i) EXPECT_FALSE(d.add(i % 20 == 7)) << "audit " << i;
  EXPECT_EQ(d.detections(), 0u);
  EXPECT_NEAR(d.recent_rate(), 0.05, 0.03);
}

TEST(DriftDetector, DeclaresARiseQuicklyOnceAndStartsAgain) {
  DriftDetector d;
  for (int i = 0; i < 100; ++i) d.add(false);
  // log(0.3 / 0.05) = 1.79 per disagreement: the third in a row passes 4.
  EXPECT_FALSE(d.add(true));
  EXPECT_FALSE(d.add(true));
  EXPECT_TRUE(d.add(true));
  EXPECT_EQ(d.detections(), 1u);
  EXPECT_DOUBLE_EQ(d.statistic(), 0.0);  // reset: the next one needs fresh evidence
  EXPECT_FALSE(d.add(true));
}

TEST(DriftDetector, DetectsA40PercentRateWithinAFewDozenAudits) {
  std::mt19937_64 rng(5);
  std::bernoulli_distribution disagree(0.4);
  std::vector<int> at;
  for (int trial = 0; trial < 50; ++trial) {
    DriftDetector d;
    for (int i = 0; i < 60; ++i) {
      if (d.add(disagree(rng))) {
        at.push_back(i + 1);
        break;
      }
    }
  }
  ASSERT_EQ(at.size(), 50u);  // every trial detected within 60 audits
  std::sort(at.begin(), at.end());
  EXPECT_GE(at.front(), 3);   // never before three audits
  EXPECT_LE(at[25], 15);      // median: about 8 audits (drift 0.54 a step towards 4)
}

// The offload test (edge/loop.h): events with their own rates, as the scenario measured them
// (p0 = 0.184 predicted, p1 = p0 + 0.3, threshold 15, at least 100 samples).
TEST(DriftDetector, OffloadRatesPerEventQuietBeforeAShiftQuickAfter) {
  DriftOptions o = drift_default_options();
  o.threshold = 15.0;
  o.min_audits = 100;
  DriftDetector d(o);
  // Hand-computed steps: routed log(0.484 / 0.184), kept log(0.516 / 0.816).
  d.add(true, 0.184, 0.484);
  EXPECT_NEAR(d.statistic(), std::log(0.484 / 0.184), 1e-12);
  d.add(false, 0.184, 0.484);
  EXPECT_NEAR(d.statistic(), std::log(0.484 / 0.184) + std::log(0.516 / 0.816), 1e-12);
  d.reset();
  std::mt19937_64 rng(9);
  // 27 % routed where 18.4 % was predicted (the worst pre-shift stretch seen): no alarm.
  std::bernoulli_distribution before(0.27);
  for (int i = 0; i < 5000; ++i) EXPECT_FALSE(d.add(before(rng), 0.184, 0.484)) << i;
  // 60 % routed after the shift: drift within a hundred samples or so.
  std::bernoulli_distribution after(0.6);
  int at = -1;
  for (int i = 0; i < 400 && at < 0; ++i) {
    if (d.add(after(rng), 0.184, 0.484)) at = i + 1;
  }
  EXPECT_GT(at, 0);
  EXPECT_LE(at, 150);
  EXPECT_THROW(d.add(true, 0.5, 0.4), Error);
  EXPECT_THROW(d.add(true, 0.0, 0.4), Error);
}

TEST(DriftDetector, RejectsNonsenseOptions) {
  DriftOptions o = drift_default_options();
  o.baseline_rate = 0.4;  // above the drift rate
  EXPECT_THROW(DriftDetector{o}, Error);
  o = drift_default_options();
  o.threshold = 0.0;
  EXPECT_THROW(DriftDetector{o}, Error);
  o = drift_default_options();
  o.window = 0;
  EXPECT_THROW(DriftDetector{o}, Error);
}

}  // namespace
}  // namespace edgefm::edge
