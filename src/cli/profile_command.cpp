// edgefm profile: the device's side of the accuracy-resource lookup table. Measures, on this
// machine, the batch-1 latency and the peak memory of every edge architecture and writes the
// device profile that a customization job request carries (docs/customization.md).
//
// Each architecture is measured in a child process of its own (fork before any torch call),
// so the memory one model leaves in the allocator or in torch's thread pools is not counted
// against the next: peak_memory_mb is the child's peak resident set (VmHWM) minus its resident
// set just before the model is created. It covers the weights, the activations and buffers of
// the forward passes, and the framework's first-use overhead (thread pools, kernels' scratch),
// which a device pays once it runs any model.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "common/threads.h"
#include "customize/arch_choice.h"
#include "models/edge.h"

namespace edgefm::cli {
namespace {

struct ProfileOptions {
  std::vector<std::string> archs;  // empty: every edge architecture
  int dim = 128;
  int repetitions = 200;
  int warmup = 20;
  int threads = 0;
  std::string device_name;
  std::string spec_path;
  data::SampleSpec spec = data::default_image_spec();  // from spec_path
  std::string json_path;
};

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"); -1 when absent.
long status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

// Runs in the child: measures one architecture, returns its row.
json measure_in_child(const ProfileOptions& o, const std::string& arch) {
  models::configure_torch_threads(o.threads);
  {
    // Resets VmHWM to the current resident set (Linux >= 4.0), so the peak is this child's.
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
  }
  const long before_kb = status_kb("VmRSS");
  auto model = models::make_edge_model(arch, o.spec, o.dim);
  auto forward = models::measure_latency(*model, 1, o.repetitions, o.warmup);
  // The raw sample's preprocessing runs before every forward on the device: the budget the
  // architecture lookup checks is the sum (only audio's log-mel costs anything measurable).
  auto frontend = models::measure_frontend_latency(o.spec, o.repetitions, o.warmup);
  models::LatencyStats latency = forward;
  latency.median_ms += frontend.median_ms;
  latency.mean_ms += frontend.mean_ms;
  latency.p99_ms += frontend.p99_ms;
  const long peak_kb = status_kb("VmHWM");
  const double peak_mb = static_cast<double>(std::max(peak_kb - before_kb, 1L)) / 1024.0;
  return {{"arch", arch},
          {"latency_ms", latency.median_ms},
          {"latency_p99_ms", latency.p99_ms},
          {"latency_mean_ms", latency.mean_ms},
          {"latency_stdev_ms", latency.stdev_ms},
          {"repetitions", latency.repetitions},
          {"forward_ms", forward.median_ms},
          {"frontend_ms", frontend.median_ms},
          {"peak_memory_mb", peak_mb},
          {"rss_before_mb", static_cast<double>(before_kb) / 1024.0},
          {"parameters", model->parameter_count()},
          {"parameter_mb", static_cast<double>(model->parameter_count()) * 4.0 / (1024.0 * 1024.0)},
          {"multiply_adds", model->multiply_adds()}};
}

json measure_in_fork(const ProfileOptions& o, const std::string& arch) {
  int fds[2];
  if (::pipe(fds) != 0) throw Error("profile: cannot create a pipe");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("profile: cannot fork");
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    int code = 0;
    try {
      out = measure_in_child(o, arch).dump();
    } catch (const std::exception& e) {
      out = json{{"error", e.what()}}.dump();
      code = 1;
    }
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fds[1]);
    std::_Exit(code);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  json row = json::parse(text, nullptr, false);
  if (row.is_object() && row.contains("error")) {
    throw Error("profile of " + arch + ": " + row["error"].get<std::string>());
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !row.is_object()) {
    throw Error("profile of " + arch + ": the measuring process failed (status " +
                std::to_string(status) + ")");
  }
  return row;
}

std::string host_name() {
  char name[256] = {0};
  if (::gethostname(name, sizeof name - 1) != 0) return "device";
  return name;
}

void run_profile(ProfileOptions& o) {
  if (o.repetitions < 1) fail_expected("--repetitions", "at least 1", std::to_string(o.repetitions));
  o.spec = load_spec_file(o.spec_path, data::default_image_spec());
  std::vector<std::string> archs = o.archs;
  if (archs.empty()) {
    for (const auto& spec : models::edge_architectures()) archs.push_back(spec.name);
  }
  for (const auto& arch : archs) models::check_edge_architecture(arch);

  json rows = json::array();
  Table table({"arch", "b1 median ms", "b1 p99 ms", "peak memory MiB", "params", "params MiB"});
  for (const auto& arch : archs) {
    std::fprintf(stderr, "[profile] measuring %s ...\n", arch.c_str());
    json row = measure_in_fork(o, arch);
    table.add_row({arch, fmt_num(row["latency_ms"].get<double>(), 3),
                   fmt_num(row["latency_p99_ms"].get<double>(), 3),
                   fmt_num(row["peak_memory_mb"].get<double>(), 1), std::to_string(row["parameters"].get<int64_t>()),
                   fmt_num(row["parameter_mb"].get<double>(), 2)});
    rows.push_back(row);
  }
  table.print(std::cout);

  json profile_json = {
      {"format", customize::kDeviceProfileFormat},
      {"version", customize::kDeviceProfileVersion},
      {"device", o.device_name.empty() ? host_name() : o.device_name},
      {"embedding_dim", o.dim},
      {"spec", data::to_json(o.spec)},
      {"threads", o.threads > 0 ? o.threads : hardware_threads()},
      {"hardware_threads", hardware_threads()},
      {"method",
       {{"latency", "median of " + std::to_string(o.repetitions) + " batch-1 forwards after " +
                        std::to_string(o.warmup) + " warm-up runs"},
        {"latency_parts", "latency_ms = forward_ms + frontend_ms (the raw sample's "
                          "preprocessing, medians measured apart)"},
        {"peak_memory", "VmHWM - VmRSS before model creation, in a fresh child process per "
                        "architecture (MiB); includes the framework's first-use overhead"}}},
      {"architectures", rows}};
  // Round-trip through the parser so the file is known to be a valid request profile.
  customize::DeviceProfile::from_json(profile_json);
  if (!o.json_path.empty()) {
    profile_json["provenance"] = provenance();
    write_json_file(o.json_path, profile_json);
    std::fprintf(stderr, "[profile] wrote %s\n", o.json_path.c_str());
  }
}

}  // namespace

void add_profile_command(CLI::App& app) {
  auto o = std::make_shared<ProfileOptions>();
  auto* c = app.add_subcommand(
      "profile",
      "Measure this device's cost of every edge architecture: batch-1 forward latency (median,\n"
      "p99) and peak memory (resident-set growth in a fresh process per architecture). The\n"
      "--json file is the device profile a customization job request carries ('profile'),\n"
      "against which the cloud picks the most accurate architecture within the budget.");
  c->add_option("--arch", o->archs,
                "architecture to measure (repeatable; default: every edge architecture)");
  c->add_option("--dim", o->dim, "embedding dimension of the edge models (the FM's)")
      ->capture_default_str()
      ->check(positive_number());
  c->add_option("--repetitions", o->repetitions, "timed batch-1 forwards per architecture")
      ->capture_default_str()
      ->check(positive_number());
  c->add_option("--warmup", o->warmup, "untimed forwards before timing")
      ->capture_default_str()
      ->check(non_negative_number());
  c->add_option("--threads", o->threads,
                "torch intra-op threads while measuring (0: the core count, as the edge runs)")
      ->capture_default_str()
      ->check(non_negative_number());
  c->add_option("--device-name", o->device_name, "name written in the profile (default: host name)");
  c->add_option("--spec", o->spec_path,
                "sample spec JSON, or a data set description with one (default: grey 28x28 images)");
  c->add_option("--json", o->json_path,
                "write the device profile: format, version, device, embedding_dim, threads, "
                "method, architectures[{arch, latency_ms, latency_p99_ms, peak_memory_mb, "
                "parameters, parameter_mb, ...}]");
  c->callback([o] { run_profile(*o); });
}

}  // namespace edgefm::cli
