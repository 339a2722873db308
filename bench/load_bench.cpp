// load_bench: the cloud service under load, over real sockets, with perf_analyzer's
// conventions. Against `edgefm serve` (started here as a child process with --fm, or a
// running one at --url) it measures
//   - a concurrency sweep: C closed-loop clients, each sending its next request when the
//     previous one is answered, for a fixed window after a warm-up;
//   - fixed request rates: open loop, arrivals at a constant or Poisson rate, each request's
//     latency counted from its scheduled time (so a late send is not hidden);
//   - batching overhead at one client: batched servers (one per queue delay) against
//     --max-batch 1 (only when it starts serve itself);
//   - slow clients: N connections that send their request head a byte every second, and
//     while they are open the latency of /v2/health/live and of an inference.
// Per step: p50/p90/p95/p99 latency, throughput (infer/s), errors (non-2xx answers and
// transport failures). Prints tables; --out DIR writes load.json and one CSV per part
// (fields in docs/cloud.md, "Load benchmark").
#include <netdb.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "cloud/client.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "common/threads.h"
#include "harness/process.h"
#include "eval/metrics.h"
#include "eval/report.h"

namespace {

using namespace edgefm;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct LoadOptions {
  std::string url;  // a running server; empty: start one with --fm
  std::string token;
  std::string fm_path;
  std::string edgefm = EDGEFM_BIN;
  std::vector<std::string> serve_args;  // passed to every serve started here
  std::vector<int> concurrency = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  std::vector<double> rates = {100, 200, 400};
  std::string arrivals = "poisson";
  int max_in_flight = 128;  // open loop: sender threads (connections)
  double warmup_s = 1.0;
  double duration_s = 5.0;
  std::vector<int64_t> overhead_delays_us = {2000, 500, 0};
  int slow_clients = 200;
  double slow_byte_interval_s = 1.0;
  double slow_duration_s = 5.0;
  double probe_interval_ms = 50.0;
  double target_ms = 100.0;  // slow clients: health and infer should answer within this
  std::string out_dir;
  uint64_t seed = 1;
};

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// ---- the server under test -------------------------------------------------------------

struct Target {
  std::string url;
  std::string label;  // what serves (for the tables)
  std::unique_ptr<harness::ChildProcess> serve;
};

fs::path work_dir(const LoadOptions& o) {
  if (!o.out_dir.empty()) return o.out_dir;
  static const fs::path temporary =
      fs::temp_directory_path() / ("edgefm-load-bench-" + std::to_string(::getpid()));
  return temporary;
}

// `edgefm serve --fm ... --port 0` with `extra` after the user's --serve-arg list.
Target start_serve(const LoadOptions& o, const std::string& tag,
                   const std::vector<std::string>& extra) {
  const fs::path dir = work_dir(o);
  fs::create_directories(dir);
  const fs::path port_file = dir / ("serve-" + tag + ".port");
  fs::remove(port_file);
  std::vector<std::string> args = {"serve", "--fm", o.fm_path, "--port", "0", "--port-file",
                                   port_file.string()};
  if (!o.token.empty()) args.insert(args.end(), {"--token", o.token});
  args.insert(args.end(), o.serve_args.begin(), o.serve_args.end());
  args.insert(args.end(), extra.begin(), extra.end());
  Target t;
  t.serve = std::make_unique<harness::ChildProcess>(o.edgefm, args,
                                                 (dir / ("serve-" + tag + ".log")).string());
  const int port = harness::wait_for_port_file(*t.serve, port_file, std::chrono::seconds(120));
  t.url = "http://127.0.0.1:" + std::to_string(port);
  t.label = "serve " + tag;
  return t;
}

cloud::ClientOptions client_options(const LoadOptions& o, const std::string& url) {
  cloud::ClientOptions c = cloud::client_default_options();
  c.url = url;
  c.token = o.token;
  c.connect_timeout_s = 10;
  c.read_timeout_s = 60;
  c.write_timeout_s = 60;
  c.max_retries = 0;  // a failure is an error of the step, never hidden by a retry
  return c;
}

// The image model's input shape from its metadata ([-1, C, H, W]).
models::ImageShape input_shape(const LoadOptions& o, const std::string& url) {
  cloud::OipClient client(client_options(o, url));
  client.wait_until_ready(60);
  const json meta = client.model_metadata("fm");
  const auto shape = meta.at("inputs").at(0).at("shape").get<std::vector<int64_t>>();
  if (shape.size() != 4) fail_expected("fm input shape", "[-1, C, H, W]", json(shape).dump());
  return {static_cast<int>(shape[1]), static_cast<int>(shape[2]), static_cast<int>(shape[3])};
}

std::vector<uint8_t> random_pixels(const models::ImageShape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> pixels(static_cast<size_t>(shape.numel()));
  for (auto& p : pixels) p = static_cast<uint8_t>(rng() >> 56);
  return pixels;
}

// ---- measurements ----------------------------------------------------------------------

// What one step measured: latencies of the answers inside the window, errors by kind.
struct Step {
  std::string mode;  // concurrency, rate, batching, slow-health, slow-infer
  int concurrency = 0;
  double rate = 0;   // requests/s asked (open loop)
  std::string server;
  double window_s = 0;
  std::vector<double> latencies_ms;
  std::map<std::string, int64_t> errors;  // "http_503", "transport", ...
  std::string first_error;
  int64_t late_sends = 0;  // open loop: sent more than 1 ms after their scheduled time

  int64_t error_count() const {
    int64_t n = 0;
    for (const auto& [kind, count] : errors) n += count;
    return n;
  }
  double throughput() const { return static_cast<double>(latencies_ms.size()) / window_s; }
  eval::LatencySummary latency() const {
    return latencies_ms.empty() ? eval::LatencySummary{} : eval::summarize_latency(latencies_ms);
  }
};

// Collects results from many threads.
class Recorder {
 public:
  explicit Recorder(Step& step) : step_(step) {}
  void ok(double ms) {
    std::lock_guard lock(mutex_);
    step_.latencies_ms.push_back(ms);
  }
  void failed(const std::exception& e) {
    std::string kind = "other";
    if (auto* r = dynamic_cast<const cloud::RequestError*>(&e)) {
      kind = r->no_answer() ? "transport" : "http_" + std::to_string(r->status());
    }
    std::lock_guard lock(mutex_);
    if (step_.first_error.empty()) step_.first_error = e.what();
    ++step_.errors[kind];
  }
  void late() {
    std::lock_guard lock(mutex_);
    ++step_.late_sends;
  }

 private:
  std::mutex mutex_;
  Step& step_;
};

struct Workload {
  models::ImageShape shape;
  std::vector<uint8_t> pixels;
};

// One inference; its outcome goes to `rec` when it finished inside [from, to].
void infer_once(cloud::OipClient& client, const Workload& w, Clock::time_point latency_from,
                Clock::time_point from, Clock::time_point to, Recorder& rec) {
  try {
    client.infer_images_u8(w.pixels.data(), 1, w.shape);
    const auto end = Clock::now();
    if (end >= from && end <= to) rec.ok(ms_between(latency_from, end));
  } catch (const std::exception& e) {
    const auto end = Clock::now();
    if (end >= from && end <= to) rec.failed(e);
  }
}

Step run_closed_loop(const LoadOptions& o, const std::string& url, const Workload& w,
                     int clients, const std::string& mode) {
  Step step;
  step.mode = mode;
  step.concurrency = clients;
  step.window_s = o.duration_s;
  Recorder rec(step);
  const auto from = Clock::now() + seconds(o.warmup_s);
  const auto to = from + seconds(o.duration_s);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      cloud::OipClient client(client_options(o, url));
      for (auto begin = Clock::now(); begin < to; begin = Clock::now()) {
        infer_once(client, w, begin, from, to, rec);
      }
    });
  }
  for (auto& t : threads) t.join();
  return step;
}

Step run_open_loop(const LoadOptions& o, const std::string& url, const Workload& w, double rate) {
  Step step;
  step.mode = "rate";
  step.rate = rate;
  step.window_s = o.duration_s;
  Recorder rec(step);
  // Arrival times from the start, over warm-up + window.
  std::vector<double> arrivals_s;
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(rate);
  for (double t = 0; t < o.warmup_s + o.duration_s;
       t += o.arrivals == "poisson" ? gap(rng) : 1.0 / rate) {
    arrivals_s.push_back(t);
  }
  const auto start = Clock::now() + std::chrono::milliseconds(200);  // senders connected
  const auto from = start + seconds(o.warmup_s);
  const auto to = from + seconds(o.duration_s);
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < o.max_in_flight; ++i) {
    threads.emplace_back([&] {
      cloud::OipClient client(client_options(o, url));
      for (size_t k = next++; k < arrivals_s.size(); k = next++) {
        const auto scheduled = start + seconds(arrivals_s[k]);
        std::this_thread::sleep_until(scheduled);
        if (Clock::now() - scheduled > std::chrono::milliseconds(1) && scheduled >= from) rec.late();
        infer_once(client, w, scheduled, from, to, rec);
      }
    });
  }
  for (auto& t : threads) t.join();
  return step;
}

// ---- slow clients ----------------------------------------------------------------------

// Connections that send a request head one byte at a time and never finish it in time.
class SlowConnections {
 public:
  SlowConnections(const std::string& url, int count, double byte_interval_s) {
    const auto colon = url.rfind(':');
    const std::string host = url.substr(url.find("//") + 2, colon - url.find("//") - 2);
    const std::string port = url.substr(colon + 1);
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* address = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &address) != 0 || address == nullptr) {
      throw Error("slow clients: cannot resolve " + url);
    }
    for (int i = 0; i < count; ++i) {
      const int fd = ::socket(address->ai_family, address->ai_socktype, 0);
      if (fd >= 0 && ::connect(fd, address->ai_addr, address->ai_addrlen) == 0) {
        sockets_.push_back(fd);
      } else if (fd >= 0) {
        ::close(fd);
      }
    }
    ::freeaddrinfo(address);
    sender_ = std::thread([this, byte_interval_s] {
      const std::string head = "GET /v2/health/live HTTP/1.1\r\nHost: load-bench\r\nX-Slow: ";
      size_t offset = 0;
      while (!stopping_) {
        const char byte = offset < head.size() ? head[offset] : 'x';
        ++offset;
        for (int fd : sockets_) (void)::send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::duration<double>(byte_interval_s), [this] { return stopping_.load(); });
      }
    });
  }
  ~SlowConnections() {
    stopping_ = true;
    wake_.notify_all();
    sender_.join();
    for (int fd : sockets_) ::close(fd);
  }
  int opened() const { return static_cast<int>(sockets_.size()); }
  // Connections the server has closed (an EOF or error is waiting).
  int closed_by_server() const {
    int closed = 0;
    for (int fd : sockets_) {
      char c;
      const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n > 0) || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) ++closed;
    }
    return closed;
  }

 private:
  std::vector<int> sockets_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread sender_;
};

struct SlowResult {
  int requested = 0, opened = 0, closed_by_server = 0;
  Step health, infer;
};

SlowResult run_slow_clients(const LoadOptions& o, const std::string& url, const Workload& w) {
  SlowResult r;
  r.requested = o.slow_clients;
  SlowConnections slow(url, o.slow_clients, o.slow_byte_interval_s);
  r.opened = slow.opened();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // every slow head has begun
  r.health.mode = "slow-health";
  r.infer.mode = "slow-infer";
  r.health.concurrency = r.infer.concurrency = 1;
  r.health.window_s = r.infer.window_s = o.slow_duration_s;
  Recorder health_rec(r.health), infer_rec(r.infer);
  cloud::OipClient health(client_options(o, url)), infer(client_options(o, url));
  const auto from = Clock::now();
  const auto to = from + seconds(o.slow_duration_s);
  for (auto next = from; next < to; next += seconds(o.probe_interval_ms / 1000.0)) {
    std::this_thread::sleep_until(next);
    auto begin = Clock::now();
    try {
      const auto answer = health.call_raw("GET", "/v2/health/live");
      if (answer.status / 100 != 2) {
        throw cloud::RequestError(answer.status, answer.body,
                                  "/v2/health/live answered " + std::to_string(answer.status));
      }
      health_rec.ok(ms_between(begin, Clock::now()));
    } catch (const std::exception& e) {
      health_rec.failed(e);
    }
    begin = Clock::now();
    infer_once(infer, w, begin, from, Clock::time_point::max(), infer_rec);
  }
  r.closed_by_server = slow.closed_by_server();
  return r;
}

// ---- output ----------------------------------------------------------------------------

json step_json(const Step& s) {
  const auto l = s.latency();
  json errors = json::object();
  for (const auto& [kind, count] : s.errors) errors[kind] = count;
  json j = {{"mode", s.mode},
            {"concurrency", s.concurrency},
            {"window_s", s.window_s},
            {"requests", l.count},
            {"errors", s.error_count()},
            {"errors_by_kind", errors},
            {"throughput_infer_per_s", s.throughput()},
            {"latency_ms_mean", l.mean_ms},
            {"latency_ms_p50", l.p50_ms},
            {"latency_ms_p90", l.p90_ms},
            {"latency_ms_p95", l.p95_ms},
            {"latency_ms_p99", l.p99_ms},
            {"latency_ms_max", l.max_ms}};
  if (s.mode == "rate") {
    j["rate"] = s.rate;
    j["late_sends"] = s.late_sends;
  }
  if (!s.server.empty()) j["server"] = s.server;
  if (!s.first_error.empty()) j["first_error"] = s.first_error;
  return j;
}

const std::vector<std::string> kCsvHeader = {
    "mode", "server", "concurrency", "rate", "window_s", "requests", "errors",
    "throughput_infer_per_s", "latency_ms_p50", "latency_ms_p90", "latency_ms_p95",
    "latency_ms_p99", "latency_ms_max"};

void write_steps_csv(const fs::path& path, const std::vector<Step>& steps) {
  std::vector<std::vector<eval::CsvCell>> rows;
  for (const auto& s : steps) {
    const auto l = s.latency();
    rows.push_back({s.mode, s.server, s.concurrency, s.rate, s.window_s,
                    static_cast<int64_t>(l.count), s.error_count(), s.throughput(), l.p50_ms,
                    l.p90_ms, l.p95_ms, l.p99_ms, l.max_ms});
  }
  eval::write_csv(path, kCsvHeader, rows);
}

void print_steps(const std::string& title, const std::vector<Step>& steps) {
  if (steps.empty()) return;
  Table table({"mode", "server", "clients", "rate/s", "infer/s", "p50 ms", "p90 ms", "p95 ms",
               "p99 ms", "max ms", "errors"});
  for (const auto& s : steps) {
    const auto l = s.latency();
    table.add_row({s.mode, s.server, s.mode == "rate" ? "-" : std::to_string(s.concurrency),
                   s.rate > 0 ? fmt_num(s.rate, 0) : "-", fmt_num(s.throughput(), 1),
                   fmt_num(l.p50_ms, 2), fmt_num(l.p90_ms, 2), fmt_num(l.p95_ms, 2),
                   fmt_num(l.p99_ms, 2), fmt_num(l.max_ms, 2), std::to_string(s.error_count())});
  }
  std::cout << "\n" << title << "\n";
  table.print(std::cout);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

json machine_json() {
  utsname u{};
  ::uname(&u);
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  double load[3] = {0, 0, 0};
  ::getloadavg(load, 3);
  return {{"date", date},        {"cpu", cpu_model()}, {"cores", hardware_threads()},
          {"kernel", u.release}, {"compiler", __VERSION__}, {"load_average_1m", load[0]}};
}

// ---- the run ---------------------------------------------------------------------------

int run(const LoadOptions& o, const std::string& command_line) {
  if (o.url.empty() == o.fm_path.empty()) throw Error("load_bench: give --url or --fm (one)");
  if (!(o.duration_s > 0) || o.warmup_s < 0 || o.max_in_flight < 1) {
    throw Error("load_bench: --duration-s and --max-in-flight must be positive");
  }
  for (int c : o.concurrency) {
    if (c < 1) fail_expected("--concurrency", "client counts >= 1", std::to_string(c));
  }
  for (double r : o.rates) {
    if (!(r > 0)) fail_expected("--rate", "rates > 0", std::to_string(r));
  }
  const json machine = machine_json();
  std::fprintf(stderr, "load_bench: %s, %d cores, load %.2f\n",
               machine["cpu"].get<std::string>().c_str(), hardware_threads(),
               machine["load_average_1m"].get<double>());

  Target main_target;
  if (o.url.empty()) {
    main_target = start_serve(o, "main", {});
  } else {
    main_target.url = o.url;
    main_target.label = o.url;
  }
  Workload w;
  w.shape = input_shape(o, main_target.url);
  w.pixels = random_pixels(w.shape, o.seed);

  std::vector<Step> sweep, rates, overhead;
  for (int c : o.concurrency) {
    sweep.push_back(run_closed_loop(o, main_target.url, w, c, "concurrency"));
    const auto l = sweep.back().latency();
    std::fprintf(stderr, "  concurrency %3d: %8.1f infer/s, p50 %.2f ms, p99 %.2f ms, %lld errors\n",
                 c, sweep.back().throughput(), l.p50_ms, l.p99_ms,
                 static_cast<long long>(sweep.back().error_count()));
  }
  for (double r : o.rates) {
    rates.push_back(run_open_loop(o, main_target.url, w, r));
    const auto l = rates.back().latency();
    std::fprintf(stderr, "  rate %6.0f/s: %8.1f infer/s, p50 %.2f ms, p99 %.2f ms, %lld errors\n",
                 r, rates.back().throughput(), l.p50_ms, l.p99_ms,
                 static_cast<long long>(rates.back().error_count()));
  }
  std::optional<SlowResult> slow;
  if (o.slow_clients > 0) {
    slow = run_slow_clients(o, main_target.url, w);
    std::fprintf(stderr, "  %d slow connections: health p99 %.2f ms, infer p99 %.2f ms\n",
                 slow->opened, slow->health.latency().p99_ms, slow->infer.latency().p99_ms);
  }
  if (main_target.serve) main_target.serve->stop();

  // Batching overhead at one client: the same FM with and without batching.
  json overhead_json = json::array();
  if (!o.fm_path.empty() && !o.overhead_delays_us.empty()) {
    auto one_client = [&](const std::string& tag, const std::vector<std::string>& extra) {
      Target t = start_serve(o, tag, extra);
      input_shape(o, t.url);  // ready
      Step s = run_closed_loop(o, t.url, w, 1, "batching");
      s.server = tag;
      t.serve->stop();
      return s;
    };
    const Step unbatched = one_client("max-batch-1", {"--max-batch", "1"});
    overhead.push_back(unbatched);
    for (int64_t delay : o.overhead_delays_us) {
      const std::string tag = "delay-" + std::to_string(delay) + "us";
      overhead.push_back(one_client(tag, {"--max-queue-delay-us", std::to_string(delay)}));
      const auto b = overhead.back().latency(), u = unbatched.latency();
      overhead_json.push_back({{"max_queue_delay_us", delay},
                               {"p50_added_ms", b.p50_ms - u.p50_ms},
                               {"p99_added_ms", b.p99_ms - u.p99_ms},
                               {"mean_added_ms", b.mean_ms - u.mean_ms}});
    }
  }

  print_steps("Concurrency sweep (closed loop, " + fmt_num(o.duration_s, 1) + " s each)", sweep);
  print_steps(std::string("Fixed request rate (open loop, ") + o.arrivals + " arrivals)", rates);
  print_steps("Batching overhead at 1 client (server: max batch 1, or batching with that queue delay)",
              overhead);
  if (slow) {
    std::cout << "\nSlow clients: " << slow->opened << " of " << slow->requested
              << " connections open, sending a header byte every "
              << fmt_num(o.slow_byte_interval_s, 1) << " s; " << slow->closed_by_server
              << " closed by the server by the end\n";
    print_steps("Probes while they are open (one every " + fmt_num(o.probe_interval_ms, 0) + " ms)",
                {slow->health, slow->infer});
  }

  if (!o.out_dir.empty()) {
    const fs::path out(o.out_dir);
    auto steps_json = [](const std::vector<Step>& steps) {
      json a = json::array();
      for (const auto& s : steps) a.push_back(step_json(s));
      return a;
    };
    json slow_json = nullptr;
    if (slow) {
      const double worst = std::max(slow->health.latency().max_ms, slow->infer.latency().max_ms);
      slow_json = {{"connections_requested", slow->requested},
                   {"connections_opened", slow->opened},
                   {"closed_by_server", slow->closed_by_server},
                   {"byte_interval_s", o.slow_byte_interval_s},
                   {"probe_interval_ms", o.probe_interval_ms},
                   {"target_ms", o.target_ms},
                   {"all_within_target", slow->health.error_count() == 0 &&
                                             slow->infer.error_count() == 0 &&
                                             worst <= o.target_ms},
                   {"health", step_json(slow->health)},
                   {"infer", step_json(slow->infer)}};
    }
    int64_t errors = 0;
    for (const auto* steps : {&sweep, &rates, &overhead}) {
      for (const auto& s : *steps) errors += s.error_count();
    }
    if (slow) errors += slow->health.error_count() + slow->infer.error_count();
    const json result = {{"benchmark", "load_bench"},
                         {"command", command_line},
                         {"machine", machine},
                         {"server", o.url.empty() ? "edgefm serve --fm " + o.fm_path : o.url},
                         {"serve_args", o.serve_args},
                         {"input_shape", {w.shape.channels, w.shape.height, w.shape.width}},
                         {"warmup_s", o.warmup_s},
                         {"duration_s", o.duration_s},
                         {"arrivals", o.arrivals},
                         {"max_in_flight", o.max_in_flight},
                         {"errors", errors},
                         {"concurrency_sweep", steps_json(sweep)},
                         {"request_rate", steps_json(rates)},
                         {"batching_overhead", {{"steps", steps_json(overhead)},
                                                {"added", overhead_json}}},
                         {"slow_clients", slow_json},
                         {"provenance", provenance()}};
    write_json_file(out / "load.json", result);
    write_steps_csv(out / "sweep.csv", sweep);
    write_steps_csv(out / "rate.csv", rates);
    write_steps_csv(out / "batching.csv", overhead);
    if (slow) write_steps_csv(out / "slow.csv", {slow->health, slow->infer});
    std::fprintf(stderr, "load_bench: wrote %s/load.json and CSVs\n", o.out_dir.c_str());
  } else {
    std::error_code ignored;
    fs::remove_all(work_dir(o), ignored);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  edgefm::set_command_line(argc, argv);
  LoadOptions o;
  CLI::App app{"load_bench: the cloud service under load over real sockets (perf_analyzer's\n"
               "conventions): a concurrency sweep, fixed request rates, batching overhead at\n"
               "one client, and health/infer latency while slow clients hold connections."};
  app.add_option("--url", o.url, "a running `edgefm serve` (no batching-overhead runs then)");
  app.add_option("--fm", o.fm_path, "start `edgefm serve --fm FILE` here instead (port 0)");
  app.add_option("--edgefm", o.edgefm, "the edgefm program to start")->capture_default_str();
  app.add_option("--serve-arg", o.serve_args,
                 "an argument for every serve started here (repeat: --serve-arg=--threads "
                 "--serve-arg=128)");
  app.add_option("--token", o.token, "bearer token (given to the serve started here too)");
  app.add_option("--concurrency", o.concurrency, "closed-loop client counts")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rate", o.rates, "open-loop request rates per second")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--arrivals", o.arrivals, "open-loop arrivals: poisson or constant")
      ->capture_default_str()
      ->check(CLI::IsMember({"poisson", "constant"}));
  app.add_option("--max-in-flight", o.max_in_flight,
                 "open loop: sender threads, one connection each (requests in flight at most)")
      ->capture_default_str();
  app.add_option("--warmup-s", o.warmup_s, "unmeasured seconds before each step")->capture_default_str();
  app.add_option("--duration-s", o.duration_s, "measured seconds of each step")->capture_default_str();
  app.add_option("--overhead-delays-us", o.overhead_delays_us,
                 "batching overhead at 1 client: batched servers with these max queue delays "
                 "against one with max batch 1 (with --fm only)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--slow-clients", o.slow_clients,
                 "connections sending their request head a byte at a time (0: none)")
      ->capture_default_str();
  app.add_option("--slow-byte-interval-s", o.slow_byte_interval_s, "seconds between their bytes")
      ->capture_default_str();
  app.add_option("--slow-duration-s", o.slow_duration_s,
                 "seconds of health and infer probes while they are open")
      ->capture_default_str();
  app.add_option("--probe-interval-ms", o.probe_interval_ms, "between probes")->capture_default_str();
  app.add_option("--target-ms", o.target_ms, "slow clients: probes should answer within")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Poisson arrivals and image pixels")->capture_default_str();
  app.add_option("--out-dir", o.out_dir, "write load.json, sweep.csv, rate.csv, batching.csv, slow.csv here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string command_line = "load_bench";
  for (int i = 1; i < argc; ++i) command_line += std::string(" ") + argv[i];
  try {
    pin_openblas_to_one_thread();
    return run(o, command_line);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "load_bench: error: %s\n", e.what());
    return 1;
  }
}
