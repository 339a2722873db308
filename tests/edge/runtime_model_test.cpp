// The edge runtime with the real small models of tests/support (a reference FM served by an
// in-process cloud service, a customized student on the edge) on Fashion-MNIST test images.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "cloud/server.h"
#include "data/dataset.h"
#include "edge/runtime.h"
#include "edge/stream.h"
#include "models/foundation.h"
#include "route/similarity.h"
#include "support/fixtures.h"

namespace edgefm::edge {
namespace {

struct Collected {
  std::mutex mutex;
  std::map<uint64_t, Answer> answers;
  int duplicates = 0;
  EdgeRuntime::AnswerSink sink() {
    return [this](const Answer& a) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!answers.emplace(a.id, a).second) ++duplicates;
    };
  }
};

// Nearest pool class of each image under an encoder.
std::vector<std::string> nearest_classes(const models::ImageEncoder& encoder,
                                         const models::TextPool& pool, const data::Dataset& set) {
  const auto images = set.to_float();
  const auto embeddings = models::embed_all(encoder, images.data(), static_cast<int64_t>(set.size()));
  std::vector<float> sims(set.size() * pool.size());
  route::cosine_similarities(embeddings.data(), set.size(), pool.data(),
                             static_cast<int>(pool.size()), pool.dim(), sims.data());
  std::vector<std::string> names;
  for (size_t i = 0; i < set.size(); ++i) {
    names.push_back(pool.name(static_cast<size_t>(
        route::top2(sims.data() + i * pool.size(), static_cast<int>(pool.size())).first)));
  }
  return names;
}

cloud::ServerOptions server_options(int port = 0) {
  cloud::ServerOptions o = cloud::server_default_options();
  o.port = port;
  o.threads = 64;
  o.keep_alive_timeout_s = 1;  // stop() waits for idle keep-alive connections to close
  return o;
}

RuntimeOptions runtime_options(Policy policy, const std::string& url) {
  RuntimeOptions o = runtime_default_options();
  o.policy = policy;
  o.client.url = url;
  o.l_app_ms = 5.0;
  o.cloud_timeout_ms = 3000.0;
  o.estimator.nominal_rtt_ms = 0.5;  // loopback
  o.nominal_cloud_ms = 2.0;
  o.breaker_cooldown_ms = 100.0;
  return o;
}

class RealModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto& files = testing::small_models();
    fm_ = new models::FoundationModel(models::load_foundation_model(files.fm));
    stream_ = new data::Dataset(
        data::load_dataset(data::fashion_mnist_description(), data::Part::test, 200));
  }
  static void TearDownTestSuite() {
    delete fm_;
    delete stream_;
  }
  static EdgeModel student() { return load_edge_model(testing::small_models().student); }
  static std::vector<size_t> order(size_t first, size_t last) {
    std::vector<size_t> o;
    for (size_t i = first; i < last; ++i) o.push_back(i);
    return o;
  }
  static models::FoundationModel* fm_;
  static data::Dataset* stream_;
};
models::FoundationModel* RealModels::fm_ = nullptr;
data::Dataset* RealModels::stream_ = nullptr;

TEST_F(RealModels, EveryRouteAnswersWithItsOwnModel) {
  cloud::CloudServer server(*fm_, server_options());
  const EdgeModel edge_model = student();
  ASSERT_FALSE(edge_model.calibration.empty());
  const auto fm_says = nearest_classes(*fm_->image, fm_->pool, *stream_);
  const auto student_says = nearest_classes(*edge_model.encoder, edge_model.pool, *stream_);

  Collected collected;
  RuntimeOptions o = runtime_options(Policy::edgefm, server.url());
  {
    EdgeRuntime runtime(student(), o, collected.sink());
    // L_app 5 ms on loopback: part of the stream goes to the FM, part stays on the student.
    EXPECT_EQ(replay(runtime, *stream_, order(0, 200), 0.0), 200u);
    runtime.drain();
    RuntimeStats s = runtime.stats();
    EXPECT_EQ(s.answered, 200);
    EXPECT_GT(s.cloud, 0);
    EXPECT_GT(s.edge, 0);
  }
  ASSERT_EQ(collected.answers.size(), 200u);
  EXPECT_EQ(collected.duplicates, 0);
  for (const auto& [id, a] : collected.answers) {
    ASSERT_NE(a.route, AnswerRoute::fallback) << a.fallback_reason;
    const auto& expected = a.route == AnswerRoute::cloud ? fm_says[id] : student_says[id];
    EXPECT_EQ(a.prediction, expected) << "sample " << id << " via " << answer_route_name(a.route);
    EXPECT_EQ(a.truth, stream_->class_names[static_cast<size_t>(stream_->labels[id])]);
    EXPECT_EQ(a.correct, a.prediction == a.truth);
  }
}

TEST_F(RealModels, CloudKilledAndRestartedMidStream) {
  auto server = std::make_unique<cloud::CloudServer>(*fm_, server_options());
  const int port = server->port();
  Collected collected;
  EdgeRuntime runtime(student(), runtime_options(Policy::cloud_only, server->url()),
                      collected.sink());
  // Sample i of the test set, id i, one every 2 ms.
  auto feed = [&](size_t first, size_t last) {
    for (size_t i = first; i < last; ++i) {
      Sample sample;
      sample.id = i;
      sample.pixels.assign(stream_->sample(i), stream_->sample(i) + stream_->sample_size());
      sample.truth = stream_->class_names[static_cast<size_t>(stream_->labels[i])];
      sample.arrival = Clock::now();
      runtime.process(std::move(sample));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    runtime.drain();
  };
  feed(0, 60);
  server.reset();  // the cloud dies: stopped and gone
  feed(60, 120);
  server = std::make_unique<cloud::CloudServer>(*fm_, server_options(port));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the breaker's cool-down
  feed(120, 200);

  std::lock_guard<std::mutex> lock(collected.mutex);
  ASSERT_EQ(collected.answers.size(), 200u);
  EXPECT_EQ(collected.duplicates, 0);
  size_t phase_cloud[3] = {0, 0, 0}, phase_fallback[3] = {0, 0, 0};
  for (const auto& [id, a] : collected.answers) {
    const size_t phase = id < 60 ? 0 : id < 120 ? 1 : 2;
    phase_cloud[phase] += a.route == AnswerRoute::cloud;
    phase_fallback[phase] += a.route == AnswerRoute::fallback;
    EXPECT_NE(a.route, AnswerRoute::edge);  // cloud-only: the edge answers only as fallback
    if (a.route == AnswerRoute::fallback) {
      EXPECT_FALSE(a.fallback_reason.empty());
    }
  }
  EXPECT_EQ(phase_cloud[0], 60u);
  EXPECT_EQ(phase_fallback[1], 60u);
  EXPECT_GE(phase_cloud[2], 75u);  // routing to the cloud resumed
}

}  // namespace
}  // namespace edgefm::edge
