#pragma once
// The link emulator: a loopback TCP proxy between the edge (clients that connect to it) and
// the cloud (the upstream it connects to for each client). This kernel has no netem, so the
// cellular link is emulated in user space:
//   - uplink bytes (edge -> cloud) cross one shared bottleneck queue, 1500 bytes at each
//     packet opportunity of a Mahimahi trace; all connections share it, first come first
//     served, like mm-link's queue. The downlink is the same with its own trace, or
//     unlimited when none is given;
//   - bytes that crossed reach the far side after a fixed one-way delay (each direction);
//   - outage windows deliver nothing in either direction: traffic stalls, nothing is
//     dropped, and TCP connections survive;
//   - random loss is emulated as a stall: a lost packet reaches the far side loss_stall_ms
//     later (its retransmission), and since TCP delivers in order, later bytes of the same
//     connection wait behind it. Whether packet n of a direction is lost depends only on
//     (seed, direction, n) (see packet_lost in net/trace.h).
// Connection set-up itself is not delayed (the proxy accepts at once).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/trace.h"

namespace edgefm::net {

// [start_s, end_s) in seconds from the link's start.
struct OutageWindow {
  double start_s = 0.0;
  double end_s = 0.0;
};

// Parses "START:END" (seconds, decimals allowed, END > START >= 0). Throws Error otherwise.
OutageWindow parse_outage(const std::string& text);

struct LinkOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: an ephemeral port, read back with LinkEmulator::port()
  std::string upstream_host = "127.0.0.1";
  uint16_t upstream_port = 0;  // required
  std::optional<Trace> uplink_trace;    // edge -> cloud; none: unlimited
  std::optional<Trace> downlink_trace;  // cloud -> edge; none: unlimited
  int64_t delay_ms = 40;                // one-way, added in each direction
  std::vector<OutageWindow> outages;
  double loss = 0.0;           // probability that a packet is lost (becomes a stall)
  int64_t loss_stall_ms = 200;  // extra delay of a lost packet, about one TCP RTO
  uint64_t seed = 1;
  double trace_offset_s = 0.0;  // link time 0 is this point of the traces
  // This connection's share of the bottleneck queue, per direction: bytes read from the
  // sender that have not crossed the link yet. Beyond it the proxy stops reading and TCP
  // pushes back on the sender (whose own socket buffers then hold the rest).
  int64_t max_queue_bytes = 256 << 10;
};

// Defaults as above; fill in upstream_port and the traces.
LinkOptions link_default_options();

struct LinkStats {
  double elapsed_s = 0.0;        // since the link started
  int64_t bytes_up = 0;          // written to the upstream (cloud) side
  int64_t bytes_down = 0;        // written to the client (edge) side
  int64_t connections_total = 0;
  int64_t connections_active = 0;
  int64_t packets_up = 0;        // packets that crossed the uplink bottleneck
  int64_t packets_down = 0;
  int64_t packets_lost_up = 0;   // of those, lost (stalled by loss_stall_ms)
  int64_t packets_lost_down = 0;
};

class LinkEmulator {
 public:
  // Validates the options, binds and listens, resolves the upstream, and starts the proxy
  // thread; the link's time (outages, trace position) starts here. Throws Error on invalid
  // options or when the address cannot be bound.
  explicit LinkEmulator(LinkOptions options);
  LinkEmulator(const LinkEmulator&) = delete;
  LinkEmulator& operator=(const LinkEmulator&) = delete;
  ~LinkEmulator();  // stop()

  // The bound listening port (the ephemeral one when listen_port was 0).
  uint16_t port() const;
  // Closes every connection and joins the proxy thread. Idempotent.
  void stop();

  LinkStats stats() const;
  // The link's time base: link time t (outages, trace offset) is start_time() + t.
  std::chrono::steady_clock::time_point start_time() const;
  // Milliseconds since start_time(), rounded down: the clock the link itself runs on.
  int64_t now_ms() const;
  const LinkOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::net
