// edgefm experiment: serve + link + edge as processes, every trace x every policy.
#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/table.h"
#include "harness/experiment.h"
#include "edge/runtime.h"

namespace edgefm::cli {
namespace {

void run_experiment_command(harness::ExperimentOptions& o, const FmOptions& fm) {
  o.fm_args = fm.arguments();
  o.fm = fm.torchscript.empty() ? fm.path : fm.torchscript;
  std::vector<harness::ExperimentRow> rows;
  {
    StopSignals signals;
    o.stop = &StopSignals::flag();
    rows = harness::run_experiment(o);
  }

  Table table({"trace", "policy", "accuracy", "mean ms", "p50 ms", "p95 ms", "p99 ms", "SLO viol.",
               "offload", "bytes up"});
  for (const auto& r : rows) {
    table.add_row({r.trace, r.policy, fmt_percent(r.accuracy), fmt_num(r.latency_ms_mean, 1),
                   fmt_num(r.latency_ms_p50, 1), fmt_num(r.latency_ms_p95, 1),
                   fmt_num(r.latency_ms_p99, 1), fmt_percent(r.slo_violation_rate),
                   fmt_percent(r.offload_ratio), std::to_string(r.bytes_up)});
  }
  table.print(std::cout);
}

}  // namespace

void add_experiment_command(CLI::App& app) {
  auto options = std::make_shared<harness::ExperimentOptions>(harness::experiment_default_options());
  auto& o = *options;
  auto fm = std::make_shared<FmOptions>();
  CLI::App* command = app.add_subcommand(
      "experiment",
      "The live experiment: starts `edgefm serve` (the FM), and for each uplink trace and each\n"
      "policy a fresh `edgefm link` (the trace, replayed from its start) and `edgefm edge` (the\n"
      "student on the test stream of --data) as separate processes on 127.0.0.1. Writes\n"
      "results.json (one row per trace and policy), results.csv, results.md and PNG plots to\n"
      "--out; each run's logs stay in --out/runs. See docs/experiment.md.");
  add_fm_options(*command, *fm);
  command->add_option("--student", o.student, "student artifact with its calibration profile")
      ->capture_default_str();
  command->add_option("--traces", o.traces,
                      "uplink traces: files, or names in --trace-dir (with or without .up); "
                      "default: every *.up there")
      ->delimiter(',');
  command->add_option("--trace-dir", o.trace_dir,
                      "folder of the bundled traces (default: $EDGEFM_TRACE_DIR, else "
                      "data/net-traces in the working folder or the source tree)");
  command->add_option("--policies", o.policies, "policies to compare, comma-separated")
      ->delimiter(',')
      ->check(CLI::IsMember(edge::policy_names()))
      ->capture_default_str();
  command->add_option("--samples", o.samples,
                      "replay the first N samples of the stream per run (0: the whole test set)")
      ->capture_default_str();
  command->add_option("--rate", o.rate, "arrival rate of the stream, samples/s")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--delay-ms", o.delay_ms, "one-way delay of the link in each direction (ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--l-app-ms", o.l_app_ms,
                      "latency budget L_app (ms); 0: derived so that it binds: the expected "
                      "latency, at the nominal network, of the smallest offload whose profile "
                      "accuracy is within --accuracy-gap of the best")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--accuracy-gap", o.accuracy_gap,
                      "for the derived L_app: accuracy (fraction) the knee may lose to the best")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--uplink-mbps", o.nominal_uplink_mbps,
                      "the trace-independent nominal uplink (with RTT = 2 x delay): where the "
                      "fixed policy is calibrated and edgefm starts")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--cloud-timeout-ms", o.cloud_timeout_ms,
                      "edge fallback timeout (0: the edge's default, 10 x L_app, at least 100 ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--max-in-flight", o.max_in_flight, "edge: cloud calls in flight at once")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--max-batch", o.max_batch, "cloud service: max dynamic batch")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--split", o.split_path, "edge: split/schedule JSON of the stream order")
      ->check(CLI::ExistingFile);
  command->add_option("--data", o.data_path, "data set description JSON (default: Fashion-MNIST)")
      ->check(CLI::ExistingFile);
  command->add_option("--token", o.token, "bearer token between the edge and the cloud service");
  command->add_option("--plot-trace", o.plot_trace,
                      "trace whose threshold and bandwidth over time are plotted (default: the "
                      "first)");
  command->add_option("--out-dir", o.out_dir, "output folder")->capture_default_str();
  command->callback([options, fm] { run_experiment_command(*options, *fm); });
}

}  // namespace edgefm::cli
