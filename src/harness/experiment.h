#pragma once
// The live experiment (`edgefm experiment`, docs/experiment.md): the cloud service, the link
// emulator and the edge runtime as separate processes of this program, for each uplink trace
// and each policy, on the same replayed stream; one row of results per (trace, policy).
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "cloud/client.h"
#include "common/json_io.h"
#include "models/encoder.h"
#include "route/threshold.h"

namespace edgefm::harness {

struct ExperimentOptions {
  std::string program;   // the edgefm binary to start (empty: this program)
  std::string fm = "models/fm.pt";
  // serve's FM options in full (a TorchScript FM: --fm-torchscript, --fm-pool, --fm-spec);
  // empty: {"--fm", fm}.
  std::vector<std::string> fm_args;
  std::string student = "models/student.pt";
  std::vector<std::string> traces;    // files, or names in trace_dir; empty: every *.up there
  std::string trace_dir;              // empty: default_trace_dir()
  std::vector<std::string> policies = {"edge-only", "cloud-only", "fixed", "edgefm"};
  size_t samples = 0;                 // stream length (0: the whole test set)
  double rate = 100.0;                // samples/s
  int64_t delay_ms = 40;              // one-way delay of the link
  double l_app_ms = route::kDefaultLAppMs;  // 0: derived (see derive_l_app)
  double accuracy_gap = 0.005;        // derived L_app: accuracy within this of the best
  double nominal_uplink_mbps = route::kDefaultUplinkMbps;   // the trace-independent nominal uplink
  double cloud_timeout_ms = 0.0;      // edge --cloud-timeout-ms (0: its default)
  int max_in_flight = 32;
  std::string split_path;             // edge --split
  std::string data_path;              // edge --data
  std::string token;                  // bearer token between edge and serve
  int max_batch = 32;                 // serve --max-batch
  std::string out_dir = "out/experiment";
  std::string plot_trace;             // trace of the threshold/bandwidth plot (default: first)
  const std::atomic<bool>* stop = nullptr;  // set by a signal handler: stop, clean up, throw
};
ExperimentOptions experiment_default_options();

// The cloud's own service time (median of the server's reported time, else of the call) over
// `calls` batch-1 requests after a warm-up, straight to the service.
double measure_service_time_ms(cloud::OipClient& client, const models::ImageShape& shape,
                               int calls = 35);

// `edgefm serve ...` as the harnesses start it on 127.0.0.1: the FM options (`fm_args`, else
// --fm `fm`), port 0 written to `port_file`, then `extra`, then the token if any.
std::vector<std::string> local_serve_arguments(const std::string& fm,
                                               const std::vector<std::string>& fm_args,
                                               const std::string& port_file,
                                               const std::vector<std::string>& extra,
                                               const std::string& token);

// Where the bundled traces are: $EDGEFM_TRACE_DIR, data/net-traces (from the working
// directory), or data/net-traces in the source tree this program was built from.
std::string default_trace_dir();

// The latency budget that binds: at the nominal network (RTT = 2 x delay, the nominal
// uplink, the measured cloud time), L_app = t_e2e at the smallest offload whose profile
// accuracy is within `accuracy_gap` of the profile's best. Offloading more than that would
// need more than L_app; the threshold search must trade.
struct LappDerivation {
  double l_app_ms = 0.0;
  double knee_offload = 0.0;     // offload ratio of that profile point
  double knee_accuracy = 0.0;
  double best_accuracy = 0.0;
  double all_cloud_ms = 0.0;     // t_e2e with everything offloaded, for comparison
  route::LatencyModel nominal;
  json to_json() const;
};
LappDerivation derive_l_app(const route::CalibrationProfile& profile,
                            const route::LatencyModel& nominal, double accuracy_gap);

struct ExperimentRow {
  std::string trace, policy;
  double accuracy = 0.0;
  double latency_ms_mean = 0.0, latency_ms_p50 = 0.0, latency_ms_p95 = 0.0, latency_ms_p99 = 0.0;
  double slo_violation_rate = 0.0;
  double offload_ratio = 0.0;
  int64_t bytes_up = 0;
  json extra;  // samples, counts, l_app_ms, threshold_final, trace_mean_bps, ...
  json to_json() const;
};

// Runs every (trace, policy), writes results.json, results.csv, results.md and the plots into
// out_dir (runs/ keeps each run's logs), and returns the rows. Progress on stderr. Every
// child process is stopped before it returns or throws.
std::vector<ExperimentRow> run_experiment(const ExperimentOptions& options);

}  // namespace edgefm::harness
