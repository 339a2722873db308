#pragma once
// EdgeFM's public C++ API: the edge runtime inside an application.
//
//   edgefm::EdgeConfig config;
//   config.student = "student.pt";            // a customized student (edgefm customize)
//   config.server = "http://cloud:8000";      // the cloud service (edgefm serve); or
//   config.policy = "edgefm";                 // ... "edge-only" with no server
//   edgefm::Edge edge(config);
//   std::future<edgefm::EdgeAnswer> answer = edge.submit(pixels);  // C x H x W bytes
//   std::printf("%s\n", answer.get().label.c_str());
//
// Each sample runs through the student on the caller's thread; a confident answer is given
// there and then, a sample the threshold sends to the cloud is answered from the cloud or,
// when the cloud does not answer within the timeout, from the edge (route "fallback"). Every
// sample is answered exactly once.
//
// Installed by `cmake --install`; use it with `find_package(EdgeFM REQUIRED)` and
// `target_link_libraries(app PRIVATE EdgeFM::edge)` (docs/edge.md, "Library").
// This header uses only the standard library.
//
// Errors: the constructor and submit() throw std::runtime_error with a one-line message
// (a student that does not load, an unknown policy, a sample of the wrong size).
#include <cstdint>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace edgefm {

struct EdgeConfig {
  std::string student;  // path of the student artifact (.pt)
  // The cloud service, scheme://host:port. Empty: no cloud (policy must be "edge-only").
  std::string server;
  std::string token;    // sent as "Authorization: Bearer <token>"; empty: none
  // edge-only, cloud-only, fixed (with `threshold`) or edgefm (the threshold follows the
  // network estimate; needs the student's calibration profile, as "fixed" without a threshold).
  std::string policy = "edgefm";
  double l_app_ms = 20.0;  // the application's latency budget per sample
  double threshold = std::numeric_limits<double>::quiet_NaN();  // fixed: the threshold
  // A cloud-bound sample is answered from the edge when the cloud has not answered within
  // this time; 0: 10 x l_app_ms, at least 100 ms.
  double cloud_timeout_ms = 0.0;
  int max_in_flight = 32;  // cloud calls at once
  // The network before the first measurement; 0: the runtime's defaults.
  double nominal_rtt_ms = 0.0;
  double nominal_uplink_mbps = 0.0;
  // Share of edge answers also checked by the cloud (counted in stats().audit_*), at most
  // audit_per_minute a minute. 0: none.
  double audit_fraction = 0.0;
  double audit_per_minute = 120.0;
  double cloud_queries_per_minute = 0.0;  // cap on all cloud calls; 0: no cap
};

struct EdgeAnswer {
  uint64_t id = 0;            // the sample's id, in submission order from 0
  std::string label;          // the predicted class
  float score = 0.0f;         // the routing score (the student's confidence)
  std::string route;          // edge, cloud, fallback (cloud-bound, answered by the edge), budget
  std::string fallback_reason;  // fallback: timeout, unreachable, refused, rejected, error, busy, down
  double latency_ms = 0.0;    // submission to answer
  std::string model_version;  // the student's version
};

struct EdgeStats {
  int64_t submitted = 0;
  int64_t answered = 0;
  int64_t edge = 0, cloud = 0, fallback = 0, budget = 0;
  int64_t audits = 0, audit_disagreements = 0;
  double threshold = 0.0;  // in force (-inf: everything on the edge, +inf: all to the cloud)
  double rtt_ms = 0.0;     // the network estimate
};

class Edge {
 public:
  using Callback = std::function<void(const EdgeAnswer&)>;

  // Loads the student and starts the runtime; no connection to the cloud is made yet (a
  // cloud that is down shows as fallback answers).
  explicit Edge(const EdgeConfig& config);
  ~Edge();  // waits for every submitted sample's answer
  Edge(Edge&&) noexcept;
  Edge& operator=(Edge&&) noexcept;
  Edge(const Edge&) = delete;
  Edge& operator=(const Edge&) = delete;

  // One sample: input_shape() bytes, channel-major (C x H x W), 0..255. Safe to call from
  // several threads.
  std::future<EdgeAnswer> submit(std::vector<uint8_t> sample);
  // The same, answered through `on_answer`: on this thread before submit returns (an edge
  // answer) or on a runtime thread later (cloud, fallback). Keep it short, do not call
  // submit() from it; an exception it throws is dropped.
  void submit(std::vector<uint8_t> sample, Callback on_answer);

  std::vector<int64_t> input_shape() const;  // {channels, height, width}
  std::vector<std::string> classes() const;  // the student's classes
  std::string model_version() const;
  EdgeStats stats() const;
  // Returns once every sample submitted so far has been answered.
  void drain();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm
