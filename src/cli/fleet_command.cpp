// edgefm fleet: N simulated devices (edge runtimes in this process, each behind its own link)
// against one `edgefm serve` (harness/fleet.h, docs/fleet.md).
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/table.h"
#include "edge/runtime.h"
#include "harness/fleet.h"
#include "models/edge.h"

namespace edgefm::cli {
namespace {

void run_fleet_command(harness::FleetOptions& o, const FmOptions& fm) {
  o.fm_args = fm.arguments();
  o.fm = fm.torchscript.empty() ? fm.path : fm.torchscript;
  // Every device runs its student on its own thread: one torch thread each.
  models::configure_torch_threads(1);
  harness::FleetResult result;
  {
    StopSignals signals;
    o.stop = &StopSignals::flag();
    result = harness::run_fleet(o);
  }
  Table table({"devices", "answers", "lost", "cloud req/s", "cloud p99 ms", "call p99 ms",
               "worst device p99 ms", "accuracy", "offload", "SLO viol."});
  table.add_row({std::to_string(result.rows.size()), std::to_string(result.answers),
                 std::to_string(result.lost_answers), fmt_num(result.cloud_requests_per_s, 1),
                 fmt_num(result.cloud_p99_ms, 2), fmt_num(result.cloud_call_p99_ms, 1),
                 fmt_num(result.device_p99_max_ms, 1), fmt_percent(result.accuracy),
                 fmt_percent(result.offload_ratio), fmt_percent(result.slo_violation_rate)});
  table.print(std::cout);
  if (result.jobs > 0) {
    std::cout << "customization jobs: " << result.jobs_done << " of " << result.jobs
              << " done, waited p50 " << fmt_num(result.job_wait_ms_p50, 0) << " ms, max "
              << fmt_num(result.job_wait_ms_max, 0) << " ms\n";
  }
}

}  // namespace

void add_fleet_command(CLI::App& app) {
  auto options = std::make_shared<harness::FleetOptions>(harness::fleet_default_options());
  auto& o = *options;
  auto fm = std::make_shared<FmOptions>();
  CLI::App* command = app.add_subcommand(
      "fleet",
      "The fleet benchmark: starts one `edgefm serve` (the FM, with customization) and runs\n"
      "--devices simulated devices in this process, each with its own edge runtime, its own\n"
      "link emulator (a bundled uplink trace from its own offset) and its own state folder,\n"
      "each replaying its share of the test stream at --rate samples/s. Reports the cloud's\n"
      "throughput and p99 and each device's accuracy, offload, latency p50/p99, SLO violations\n"
      "and lost answers in --out-dir: results.json, results.csv, results.md and a PNG plot.\n"
      "See docs/fleet.md.");
  add_fm_options(*command, *fm);
  command->add_option("--student", o.student, "student artifact every device runs")
      ->capture_default_str();
  command->add_option("--devices", o.devices, "number of simulated devices")
      ->capture_default_str()
      ->check(number_in(1, 2000));
  command->add_option("--samples", o.samples,
                      "samples per device (0: an equal share of the test set); device d replays "
                      "the d-th block of the stream, wrapping around")
      ->capture_default_str();
  command->add_option("--rate", o.rate, "arrival rate at each device, samples/s")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--policy", o.policy, "every device's routing policy")
      ->capture_default_str()
      ->check(CLI::IsMember(edge::policy_names()));
  command->add_option("--l-app-ms", o.l_app_ms,
                      "the application's latency budget L_app (ms): routing keeps within it; "
                      "later answers are SLO violations")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--traces", o.traces,
                      "uplink traces: files, or names in --trace-dir; device d gets trace d mod "
                      "their number (default: every *.up there)")
      ->delimiter(',');
  command->add_option("--trace-dir", o.trace_dir,
                      "folder of the bundled traces (default: $EDGEFM_TRACE_DIR, else "
                      "data/net-traces in the working folder or the source tree)");
  command->add_option("--trace-offset-s", o.trace_offset_s,
                      "device d starts its trace d x this many seconds in (wrapping at the "
                      "trace's end)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--delay-ms", o.delay_ms, "one-way delay of every link in each direction (ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--uplink-mbps", o.nominal_uplink_mbps,
                      "network assumed before any measurement: uplink (Mbit/s); the RTT is 2 x "
                      "--delay-ms")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--max-in-flight", o.max_in_flight,
                      "cloud calls in flight at once per device (one connection each)")
      ->capture_default_str()
      ->check(number_in(1, 64));
  command->add_option("--cloud-timeout-ms", o.cloud_timeout_ms,
                      "answer a cloud-bound sample from the edge (fallback) when the cloud has "
                      "not answered this long after its arrival (0: 10 x L_app, at least 100 ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--max-batch", o.max_batch, "cloud service: max dynamic batch")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--data", o.data_path, "data set description JSON (default: Fashion-MNIST)")
      ->check(CLI::ExistingFile);
  command->add_option("--split", o.split_path, "split/schedule JSON of the stream order")
      ->check(CLI::ExistingFile);
  command->add_option("--token", o.token, "bearer token between the devices and the cloud service");
  command->add_option("--jobs", o.jobs,
                      "the first N devices also upload --job-uploads samples through their link and "
                      "submit one customization job each when they start; their queueing delay is "
                      "reported (the devices keep their model)")
      ->capture_default_str();
  command->add_option("--job-uploads", o.job_uploads, "samples each job's device uploads first")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--job-epochs", o.job_epochs, "distillation epochs of every job")
      ->capture_default_str()
      ->check(number_in(1, 1000));
  command->add_option("--out-dir", o.out_dir,
                      "output folder: results, serve's log, devices/<name>/answers.jsonl")
      ->capture_default_str();
  command->callback([options, fm] { run_fleet_command(*options, *fm); });
}

}  // namespace edgefm::cli
