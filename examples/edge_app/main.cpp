// edge_app STUDENT [SERVER [TOKEN]]: an application that answers samples with EdgeFM's edge.
// Without a server everything is answered on the edge (policy edge-only); with one the
// edgefm policy sends the samples the student is unsure of to the cloud.
// Prints the student's classes, then one line per answer:
//   answer <id> route=<route> score=<score> latency_ms=<ms> version=<version> label=<label>
// (a label may hold spaces: it is the rest of the line).
#include <edgefm/edge.h>

#include <cstdio>
#include <exception>
#include <future>
#include <mutex>
#include <string>
#include <vector>

namespace {

void print(const edgefm::EdgeAnswer& a) {
  std::printf("answer %llu route=%s%s%s score=%.4f latency_ms=%.3f version=%s label=%s\n",
              static_cast<unsigned long long>(a.id), a.route.c_str(),
              a.fallback_reason.empty() ? "" : " reason=", a.fallback_reason.c_str(), a.score,
              a.latency_ms, a.model_version.empty() ? "-" : a.model_version.c_str(),
              a.label.c_str());
}

// Test patterns of the student's input size: all zero, all 255, and gradients.
std::vector<std::vector<uint8_t>> samples(const std::vector<int64_t>& shape) {
  const int64_t c = shape.at(0), h = shape.at(1), w = shape.at(2);
  std::vector<std::vector<uint8_t>> out;
  out.emplace_back(static_cast<size_t>(c * h * w), uint8_t{0});
  out.emplace_back(static_cast<size_t>(c * h * w), uint8_t{255});
  for (int direction = 0; direction < 2; ++direction) {
    std::vector<uint8_t> s;
    for (int64_t k = 0; k < c; ++k) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          const int64_t along = direction == 0 ? x : y;
          const int64_t size = direction == 0 ? w : h;
          s.push_back(static_cast<uint8_t>(size > 1 ? along * 255 / (size - 1) : 0));
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s STUDENT [SERVER [TOKEN]]\n", argv[0]);
    return 2;
  }
  try {
    edgefm::EdgeConfig config;
    config.student = argv[1];
    if (argc > 2) {
      config.server = argv[2];
      if (argc > 3) config.token = argv[3];
    } else {
      config.policy = "edge-only";
    }
    edgefm::Edge edge(config);

    const std::vector<int64_t> shape = edge.input_shape();
    std::printf("input %lldx%lldx%lld\n", static_cast<long long>(shape[0]),
                static_cast<long long>(shape[1]), static_cast<long long>(shape[2]));
    for (const std::string& name : edge.classes()) std::printf("class %s\n", name.c_str());

    // Futures: submit, then wait for each answer.
    std::vector<std::future<edgefm::EdgeAnswer>> futures;
    for (auto& sample : samples(shape)) futures.push_back(edge.submit(std::move(sample)));
    for (auto& future : futures) print(future.get());

    // Callbacks: answered on this thread (edge) or a runtime thread (cloud, fallback).
    std::mutex print_mutex;
    for (auto& sample : samples(shape)) {
      edge.submit(std::move(sample), [&print_mutex](const edgefm::EdgeAnswer& a) {
        std::lock_guard<std::mutex> lock(print_mutex);
        print(a);
      });
    }
    edge.drain();

    const edgefm::EdgeStats stats = edge.stats();
    std::printf("submitted %lld answered %lld edge %lld cloud %lld fallback %lld\n",
                static_cast<long long>(stats.submitted), static_cast<long long>(stats.answered),
                static_cast<long long>(stats.edge), static_cast<long long>(stats.cloud),
                static_cast<long long>(stats.fallback));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edge_app: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
