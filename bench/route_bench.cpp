// Routing hot path and its offline helpers: similarities, margin + routing decision, every
// confidence score, calibration profile, threshold search, open-set metrics and selection.
//
//   build/bench/route_bench                              # table
//   build/bench/route_bench --benchmark_out=route.json --benchmark_out_format=json
//
// Shapes follow the deployment: pool k = 10 classes, embedding d = 128, one sample at a time.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/provenance.h"
#include "customize/select.h"
#include "eval/metrics.h"
#include "route/scores.h"
#include "route/similarity.h"
#include "route/threshold.h"

namespace {

using namespace edgefm;

constexpr int kClasses = 10;
constexpr int kDim = 128;
constexpr size_t kSamples = 1024;  // cycled through so the inputs are not always in L1

std::vector<float> unit_rows(size_t n, int d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> rows(n * d);
  for (auto& v : rows) v = normal(rng);
  route::l2_normalize_rows(rows.data(), n, d);
  return rows;
}

struct Fixture {
  std::vector<float> pool = unit_rows(kClasses, kDim, 1);
  std::vector<float> embeddings = unit_rows(kSamples, kDim, 2);
  std::vector<float> sims;
  Fixture() {
    sims.resize(kSamples * kClasses);
    route::cosine_similarities(embeddings.data(), kSamples, pool.data(), kClasses, kDim,
                               sims.data());
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// Embedding -> similarities to the pool -> margin -> edge/cloud: the per-sample edge work
// after the model's forward pass.
void BM_SimilarityMarginRoute(benchmark::State& state) {
  const auto& f = fixture();
  float sims[kClasses];
  size_t i = 0;
  size_t edge = 0;
  for (auto _ : state) {
    route::cosine_similarities(f.embeddings.data() + i * kDim, 1, f.pool.data(), kClasses, kDim,
                               sims);
    edge += route::route(route::margin(sims, kClasses), 0.05) == route::Route::edge;
    i = (i + 1) % kSamples;
  }
  benchmark::DoNotOptimize(edge);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SimilarityMarginRoute);

// Margin + routing decision from precomputed similarities.
void BM_MarginRoute(benchmark::State& state) {
  const auto& f = fixture();
  size_t i = 0;
  size_t edge = 0;
  for (auto _ : state) {
    edge += route::route(route::margin(f.sims.data() + i * kClasses, kClasses), 0.05) ==
            route::Route::edge;
    i = (i + 1) % kSamples;
  }
  benchmark::DoNotOptimize(edge);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MarginRoute);

// Batched similarities: 256 samples per call.
void BM_SimilarityBatch256(benchmark::State& state) {
  const auto& f = fixture();
  std::vector<float> sims(256 * kClasses);
  for (auto _ : state) {
    route::cosine_similarities(f.embeddings.data(), 256, f.pool.data(), kClasses, kDim,
                               sims.data());
    benchmark::DoNotOptimize(sims.data());
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_SimilarityBatch256);

// One score per sample, through the ConfidenceScore interface (a virtual call).
void BM_Score(benchmark::State& state, const std::string& name) {
  const auto& f = fixture();
  std::vector<float> train = unit_rows(5000, kDim, 3);
  std::vector<int> labels(5000);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = int(i % kClasses);
  std::vector<float> train_sims(labels.size() * kClasses);
  route::cosine_similarities(train.data(), labels.size(), f.pool.data(), kClasses, kDim,
                             train_sims.data());
  const auto score = route::fit_score(name, {}, train.data(), labels.data(), labels.size(), kDim,
                                      kClasses, train_sims.data());
  size_t i = 0;
  float sum = 0.0f;
  for (auto _ : state) {
    sum += (*score)(f.sims.data() + i * kClasses, kClasses, f.embeddings.data() + i * kDim, kDim);
    i = (i + 1) % kSamples;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  if (name == "knn") state.SetLabel("bank 2048 x 128, k 10");
  if (name == "proto") state.SetLabel("10 prototypes");
  if (name == "mahalanobis") state.SetLabel("128 x 128 whitening, 10 means");
  if (name == "hybrid") state.SetLabel("margin + mahalanobis, two percentile maps");
}
BENCHMARK_CAPTURE(BM_Score, margin, std::string("margin"));
BENCHMARK_CAPTURE(BM_Score, max_cosine, std::string("max_cosine"));
BENCHMARK_CAPTURE(BM_Score, max_softmax, std::string("max_softmax"));
BENCHMARK_CAPTURE(BM_Score, entropy, std::string("entropy"));
BENCHMARK_CAPTURE(BM_Score, energy, std::string("energy"));
BENCHMARK_CAPTURE(BM_Score, mcm, std::string("mcm"));
BENCHMARK_CAPTURE(BM_Score, knn, std::string("knn"));
BENCHMARK_CAPTURE(BM_Score, proto, std::string("proto"));
BENCHMARK_CAPTURE(BM_Score, mahalanobis, std::string("mahalanobis"));
BENCHMARK_CAPTURE(BM_Score, hybrid, std::string("hybrid"));

std::vector<route::CalibrationSample> calibration_samples(size_t n) {
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<float> uniform;
  std::vector<route::CalibrationSample> samples(n);
  for (auto& s : samples) {
    s.score = uniform(rng);
    s.edge_correct = uniform(rng) < 0.5f + s.score / 2;  // confident answers are right more often
    s.fm_correct = uniform(rng) < 0.95f;
  }
  return samples;
}

void BM_BuildProfile(benchmark::State& state) {
  const auto samples = calibration_samples(size_t(state.range(0)));
  for (auto _ : state) {
    auto profile = route::build_profile(samples, 200);
    benchmark::DoNotOptimize(profile.points.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_BuildProfile)->Arg(10000)->Unit(benchmark::kMicrosecond);

// The search the edge re-runs whenever its bandwidth/RTT estimate moves.
void BM_ThresholdSearch200(benchmark::State& state) {
  const auto profile = route::build_profile(calibration_samples(10000), 200);
  route::LatencyModel latency{0.4, 3.0, 40.0, 2e6, 800.0};
  double l_app = 10.0;
  for (auto _ : state) {
    const auto choice = route::search_threshold(profile, latency, l_app);
    benchmark::DoNotOptimize(choice.threshold);
    l_app = l_app < 40.0 ? l_app + 1.0 : 10.0;
  }
  state.counters["points"] = double(profile.points.size());
}
BENCHMARK(BM_ThresholdSearch200);

void BM_Auroc(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto pos = unit_rows(1, int(n), 5);
  const auto neg = unit_rows(1, int(n), 6);
  for (auto _ : state) benchmark::DoNotOptimize(eval::auroc(pos, neg));
  state.SetItemsProcessed(state.iterations() * 2 * n);
}
BENCHMARK(BM_Auroc)->Arg(5000)->Unit(benchmark::kMicrosecond);

// Offline upload selection: 10 000 samples, budget 1 000 (k-center over 4 000 candidates).
void BM_SelectForUpload(benchmark::State& state, customize::SelectionStrategy strategy) {
  const size_t n = 10000;
  const auto embeddings = unit_rows(n, kDim, 7);
  const auto scores = unit_rows(1, int(n), 8);
  for (auto _ : state) {
    auto picked =
        customize::select_for_upload(strategy, scores, embeddings.data(), kDim, 1000, 1);
    benchmark::DoNotOptimize(picked.data());
  }
}
BENCHMARK_CAPTURE(BM_SelectForUpload, random, customize::SelectionStrategy::random)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SelectForUpload, lowest_margin, customize::SelectionStrategy::lowest_margin)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SelectForUpload, margin_diversity,
                  customize::SelectionStrategy::margin_diversity)
    ->Unit(benchmark::kMillisecond);

// The streaming edge selector: cost per offered sample (all uncertain, windows of 32).
void BM_UploadSelectorOffer(benchmark::State& state) {
  const auto& f = fixture();
  customize::UploadSelectorParams params;
  params.samples_per_minute = 600;
  params.uplink_kbps = 1000;
  customize::UploadSelector selector(params, kDim);
  size_t i = 0;
  double now = 0.0;
  for (auto _ : state) {
    auto picked = selector.offer(i, 0.01f, f.embeddings.data() + (i % kSamples) * kDim, 800, now);
    benchmark::DoNotOptimize(picked.data());
    ++i;
    now += 0.01;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_UploadSelectorOffer);

}  // namespace

// BENCHMARK_MAIN plus the provenance of the run in the JSON context (--benchmark_out):
// "provenance_command", "provenance_date", "provenance_machine", "provenance_version".
int main(int argc, char** argv) {
  edgefm::set_command_line(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const edgefm::json provenance = edgefm::provenance();
  for (const auto& [key, value] : provenance.items()) {
    benchmark::AddCustomContext("provenance_" + key, value.get<std::string>());
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
