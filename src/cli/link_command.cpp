// edgefm link: the trace-driven link emulator between the edge runtime and the cloud service.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/usage.h"
#include "common/error.h"
#include "common/json_io.h"
#include "net/link.h"

namespace edgefm::cli {
namespace {

struct LinkCommandOptions {
  std::string listen = "127.0.0.1:0";
  std::string upstream;
  std::string uplink_trace;
  std::string downlink_trace;
  int64_t delay_ms = 40;
  std::vector<std::string> outages;
  double loss = 0.0;
  int64_t loss_stall_ms = 200;
  uint64_t seed = 1;
  double trace_offset_s = 0.0;
  double stats_interval_s = 5.0;
  std::string port_file;
  std::string json_path;
};

volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int signal) { g_stop_signal = signal; }

// "HOST:PORT" (the last colon separates the port, so "[::1]:80" and "::1:80" both work).
std::pair<std::string, uint16_t> parse_host_port(const std::string& text, const std::string& what,
                                                 bool allow_zero) {
  size_t colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
  std::string port_text = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  long port = -1;
  if (!port_text.empty() && port_text.find_first_not_of("0123456789") == std::string::npos &&
      port_text.size() <= 5) {
    port = std::stol(port_text);
  }
  if (host.empty() || port < (allow_zero ? 0 : 1) || port > 65535) {
    fail_expected(what, std::string("HOST:PORT with a port in ") + (allow_zero ? "0" : "1") +
                            "-65535",
                  "'" + text + "'");
  }
  return {host, static_cast<uint16_t>(port)};
}

std::string describe_trace(const std::optional<net::Trace>& trace) {
  if (!trace) return "unlimited";
  char text[160];
  std::snprintf(text, sizeof text, "%s (%.2f Mbit/s mean, %.0f s)", trace->name().c_str(),
                trace->mean_rate_bps() / 1e6, trace->period_ms() / 1000.0);
  return text;
}

void run_link(const LinkCommandOptions& o) {
  net::LinkOptions options = net::link_default_options();
  auto [listen_host, listen_port] = parse_host_port(o.listen, "--listen", true);
  auto [upstream_host, upstream_port] = parse_host_port(o.upstream, "--upstream", false);
  options.listen_host = listen_host;
  options.listen_port = listen_port;
  options.upstream_host = upstream_host;
  options.upstream_port = upstream_port;
  options.uplink_trace = net::Trace::load(o.uplink_trace);
  if (!o.downlink_trace.empty()) options.downlink_trace = net::Trace::load(o.downlink_trace);
  options.delay_ms = o.delay_ms;
  for (const auto& text : o.outages) options.outages.push_back(net::parse_outage(text));
  options.loss = o.loss;
  options.loss_stall_ms = o.loss_stall_ms;
  options.seed = o.seed;
  options.trace_offset_s = o.trace_offset_s;
  if (!(o.stats_interval_s > 0.0)) {
    fail_expected("--stats-interval-s", "a positive number of seconds",
                  std::to_string(o.stats_interval_s));
  }

  g_stop_signal = 0;
  struct sigaction action{}, old_int{}, old_term{};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  net::LinkEmulator link(options);
  const std::string listening = listen_host + ":" + std::to_string(link.port());
  if (!o.port_file.empty()) write_text_file(o.port_file, std::to_string(link.port()) + "\n");
  std::fprintf(stderr,
               "[link] listening on %s -> upstream %s:%u; uplink %s; downlink %s; delay %lld ms "
               "each way; %zu outage window(s); loss %.4g (seed %llu)\n",
               listening.c_str(), upstream_host.c_str(), static_cast<unsigned>(upstream_port),
               describe_trace(options.uplink_trace).c_str(),
               describe_trace(options.downlink_trace).c_str(),
               static_cast<long long>(options.delay_ms), options.outages.size(), options.loss,
               static_cast<unsigned long long>(options.seed));
  std::fflush(stderr);

  json intervals = json::array();
  net::LinkStats last = link.stats();
  auto next_report = link.start_time() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::duration<double>(o.stats_interval_s));
  auto report = [&](const net::LinkStats& now) {
    double span = now.elapsed_s - last.elapsed_s;
    if (span <= 0.0) return;
    double up_bps = 8.0 * static_cast<double>(now.bytes_up - last.bytes_up) / span;
    double down_bps = 8.0 * static_cast<double>(now.bytes_down - last.bytes_down) / span;
    int64_t t0 = static_cast<int64_t>(last.elapsed_s * 1000.0 + options.trace_offset_s * 1000.0);
    int64_t t1 = static_cast<int64_t>(now.elapsed_s * 1000.0 + options.trace_offset_s * 1000.0);
    // What the traces offer over the same span, outages not subtracted.
    double trace_bps = t1 > t0 ? options.uplink_trace->rate_bps(t0, t1) : 0.0;
    double trace_down_bps =
        t1 > t0 && options.downlink_trace ? options.downlink_trace->rate_bps(t0, t1) : 0.0;
    std::string down_offer;
    if (options.downlink_trace) {
      char text[64];
      std::snprintf(text, sizeof text, " (trace offers %.3f)", trace_down_bps / 1e6);
      down_offer = text;
    }
    std::fprintf(stderr,
                 "[link] %7.1f s: up %.3f Mbit/s (trace offers %.3f), down %.3f Mbit/s%s, "
                 "%lld connections (%lld open), %lld packets lost\n",
                 now.elapsed_s, up_bps / 1e6, trace_bps / 1e6, down_bps / 1e6, down_offer.c_str(),
                 static_cast<long long>(now.connections_total),
                 static_cast<long long>(now.connections_active),
                 static_cast<long long>(now.packets_lost_up + now.packets_lost_down));
    intervals.push_back({{"t_s", now.elapsed_s},
                         {"up_bps", up_bps},
                         {"down_bps", down_bps},
                         {"trace_up_bps", trace_bps},
                         {"trace_down_bps", options.downlink_trace ? json(trace_down_bps) : json()},
                         {"connections_open", now.connections_active}});
    last = now;
  };
  while (g_stop_signal == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() >= next_report) {
      report(link.stats());
      next_report += std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(o.stats_interval_s));
    }
  }
  link.stop();
  net::LinkStats final_stats = link.stats();
  report(final_stats);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  std::fprintf(stderr, "[link] stopped by signal %d after %.1f s: %lld bytes up, %lld bytes down\n",
               static_cast<int>(g_stop_signal), final_stats.elapsed_s,
               static_cast<long long>(final_stats.bytes_up),
               static_cast<long long>(final_stats.bytes_down));

  if (!o.json_path.empty()) {
    json outages = json::array();
    for (const auto& window : options.outages) outages.push_back({window.start_s, window.end_s});
    json result = {
        {"listen", listening},
        {"upstream", o.upstream},
        {"uplink_trace", options.uplink_trace->name()},
        {"uplink_trace_mean_bps", options.uplink_trace->mean_rate_bps()},
        {"downlink_trace", options.downlink_trace ? json(options.downlink_trace->name()) : json()},
        {"delay_ms", options.delay_ms},
        {"outages_s", outages},
        {"loss", options.loss},
        {"loss_stall_ms", options.loss_stall_ms},
        {"seed", options.seed},
        {"trace_offset_s", options.trace_offset_s},
        {"duration_s", final_stats.elapsed_s},
        {"bytes_up", final_stats.bytes_up},
        {"bytes_down", final_stats.bytes_down},
        {"mean_up_bps", final_stats.elapsed_s > 0 ? 8.0 * final_stats.bytes_up / final_stats.elapsed_s : 0.0},
        {"mean_down_bps", final_stats.elapsed_s > 0 ? 8.0 * final_stats.bytes_down / final_stats.elapsed_s : 0.0},
        {"connections_total", final_stats.connections_total},
        {"packets_up", final_stats.packets_up},
        {"packets_down", final_stats.packets_down},
        {"packets_lost_up", final_stats.packets_lost_up},
        {"packets_lost_down", final_stats.packets_lost_down},
        {"intervals", intervals}};
    write_json_file(o.json_path, result);
  }
}

}  // namespace

void add_link_command(CLI::App& app) {
  auto options = std::make_shared<LinkCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "link",
      "Emulate a cellular link between the edge and the cloud: a TCP proxy on this machine\n"
      "that releases uplink bytes (edge -> cloud) only at the packet opportunities of a\n"
      "Mahimahi trace (1500 bytes each, one bottleneck queue shared by all connections),\n"
      "adds a one-way delay in each direction, and can stall traffic (outage windows, random\n"
      "loss). Point the edge runtime at --listen; the link connects each client to\n"
      "--upstream. Runs until SIGINT/SIGTERM; prints its port on start and throughput every\n"
      "--stats-interval-s seconds to stderr.");
  command->add_option("--listen", options->listen,
                      "HOST:PORT to accept edge connections on; port 0 picks a free port (see "
                      "the start line or --port-file)")
      ->capture_default_str();
  command->add_option("--upstream", options->upstream,
                      "HOST:PORT of the cloud service each connection is forwarded to")
      ->required();
  command->add_option("--uplink-trace", options->uplink_trace,
                      "Mahimahi trace for edge -> cloud: one millisecond timestamp a line, each a "
                      "1500-byte packet opportunity; repeats at its end (e.g. "
                      "data/net-traces/Verizon-LTE-short.up)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("--downlink-trace", options->downlink_trace,
                      "Mahimahi trace for cloud -> edge; without it the downlink is unlimited "
                      "(only the delay applies)")
      ->check(CLI::ExistingFile);
  command->add_option("--delay-ms", options->delay_ms,
                      "one-way propagation delay added in each direction, in ms (RTT = 2x)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--outage", options->outages,
                      "START:END seconds from the link start during which nothing is delivered "
                      "in either direction (traffic stalls, connections stay up); repeatable, "
                      "e.g. --outage 10:12 --outage 30:30.5");
  command->add_option("--loss", options->loss,
                      "probability that a packet is lost; a lost packet arrives --loss-stall-ms "
                      "late and holds back its connection's later bytes (TCP retransmission)")
      ->capture_default_str()
      ->check(number_in(0.0, 1.0));
  command->add_option("--loss-stall-ms", options->loss_stall_ms,
                      "extra delay of a lost packet, about one TCP retransmission timeout")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--seed", options->seed,
                      "seed of the loss pattern: the same seed loses the same packet numbers")
      ->capture_default_str();
  command->add_option("--trace-offset-s", options->trace_offset_s,
                      "start this many seconds into the traces")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--stats-interval-s", options->stats_interval_s,
                      "seconds between throughput lines on stderr")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--port-file", options->port_file,
                      "write the listening port to this file once listening (for scripts "
                      "using port 0)");
  command->add_option("--json", options->json_path,
                      "write options, totals (bytes_up, bytes_down, mean_up_bps, connections, "
                      "packets lost) and per-interval throughput to this JSON file on exit");
  command->callback([options] { run_link(*options); });
}

}  // namespace edgefm::cli
