#pragma once
// The fleet benchmark (`edgefm fleet`, docs/fleet.md): N simulated devices against one cloud
// service. The service is a child process (`edgefm serve` with its customization extension);
// the devices live in this process, each with its own edge runtime (edge/runtime.h), its own
// link emulator (net/link.h, in-process: a loopback proxy shaped by one of the bundled uplink
// traces, started at a per-device offset into it) and its own state folder. Each device
// replays its own share of the test stream at `rate` samples/s; the first sample of device d
// arrives d / (devices x rate) s after the first of device 0, so the fleet's arrivals spread
// evenly. With `jobs` > 0 the first `jobs` devices also upload `job_uploads` samples of their
// stream through their link when they start and submit one customization job each; the jobs'
// queueing delay (submitted to started, as the service records it) is reported per device.
// The devices keep their model (the jobs' artifacts are not installed). Results: out_dir/results.json (fleet totals, the cloud's throughput and p99, one
// row per device), results.csv (the rows), results.md and latency_by_device.png.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "route/threshold.h"

namespace edgefm::harness {

struct FleetOptions {
  std::string program;                // the edgefm binary that serves (empty: this program)
  std::string fm = "models/fm.pt";    // for messages and results
  std::vector<std::string> fm_args;   // serve's FM options (empty: --fm fm)
  std::string student = "models/student.pt";  // every device's model
  size_t devices = 10;
  size_t samples = 0;                 // per device (0: an equal share of the test set)
  double rate = 10.0;                 // samples/s per device
  std::string policy = "edgefm";      // edge-only, cloud-only, fixed, edgefm
  double l_app_ms = route::kDefaultLAppMs;
  std::vector<std::string> traces;    // files, or names in trace_dir; empty: every *.up there
  std::string trace_dir;              // empty: default_trace_dir()
  double trace_offset_s = 7.0;        // device d starts its trace at d x this (wrapping)
  int64_t delay_ms = 40;              // one-way delay of every link
  double nominal_uplink_mbps = route::kDefaultUplinkMbps;
  int max_in_flight = 4;              // cloud calls in flight per device
  double cloud_timeout_ms = 0.0;      // 0: the runtime's default (10 x L_app, >= 100 ms)
  int max_batch = 32;                 // serve --max-batch
  std::string data_path;              // data set description (empty: Fashion-MNIST)
  std::string split_path;             // stream order (empty: the default split, shuffled)
  std::string token;                  // bearer token between the devices and serve
  size_t jobs = 0;                    // devices that submit one customization job each
  size_t job_uploads = 100;           // samples each of them uploads first
  int job_epochs = 1;                 // distillation epochs of every job
  std::string out_dir = "out/fleet";
  const std::atomic<bool>* stop = nullptr;  // set by a signal handler: stop, write, throw
};
FleetOptions fleet_default_options();

// One device's results.
struct FleetDeviceRow {
  std::string device;                 // "device-007"
  std::string trace;
  double trace_offset_s = 0.0;
  size_t samples = 0;                 // fed to its runtime
  size_t answers = 0;                 // distinct samples answered
  size_t lost = 0;                    // samples - answers
  double accuracy = 0.0;
  double offload_ratio = 0.0;
  double latency_ms_p50 = 0.0, latency_ms_p99 = 0.0, latency_ms_mean = 0.0;
  double slo_violation_rate = 0.0;
  size_t edge = 0, cloud = 0, fallback = 0, budget = 0;
  int64_t cloud_calls = 0;            // probes included
  int64_t bytes_up = 0;
  double threshold_final = 0.0;
  // Its customization job, if it submitted one: "done", "failed", "cancelled", ... ("": none);
  // queueing delay and run time in ms (-1: not known).
  std::string job_state;
  double job_wait_ms = -1.0, job_run_ms = -1.0;
  json to_json() const;  // job fields only for a device with a job
};

// Fleet totals; `rows` one per device.
struct FleetResult {
  std::vector<FleetDeviceRow> rows;
  size_t samples = 0, answers = 0, lost_answers = 0;
  double duration_s = 0.0;             // first arrival to last answer
  int64_t cloud_requests = 0;          // cloud calls of every device (probes included)
  double cloud_requests_per_s = 0.0;
  double cloud_p50_ms = 0.0, cloud_p99_ms = 0.0;             // the service's own time
  double cloud_call_p50_ms = 0.0, cloud_call_p99_ms = 0.0;   // as the devices saw it (link included)
  double latency_ms_p99 = 0.0;         // every answer of every device
  double device_p99_max_ms = 0.0;      // the worst device's p99
  double accuracy = 0.0, offload_ratio = 0.0, slo_violation_rate = 0.0;
  size_t jobs = 0, jobs_done = 0;
  double job_wait_ms_p50 = 0.0, job_wait_ms_max = 0.0;
  bool interrupted = false;
  json to_json() const;                // results.json without the setup fields
};

// Runs the fleet, writes the results into out_dir and returns them. Progress on stderr. The
// service is stopped before it returns or throws; a stop request ends the replay early, the
// answered samples are reported and Error is thrown after writing.
FleetResult run_fleet(const FleetOptions& options);

}  // namespace edgefm::harness
