#include "net/link.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <string_view>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"

namespace edgefm::net {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr size_t kReadChunk = 64 * 1024;
// Bytes of one direction of one connection that crossed the link and wait out the delay; it
// only binds on an unlimited direction (a trace bounds them by rate x delay).
constexpr int64_t kMaxInFlightBytes = 64 << 20;
// The loop wakes at least this often even when idle (stop() also wakes it at once).
constexpr int64_t kMaxSleepMs = 250;
constexpr int64_t kAcceptPauseMs = 100;

std::string errno_text() { return std::strerror(errno); }

bool parse_seconds(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size() && std::isfinite(value);
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A reset instead of a clean close, so the peer of a broken connection sees an error.
void close_with_reset(int fd) {
  if (fd < 0) return;
  linger hard{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(fd);
}

struct Resolved {
  sockaddr_storage address{};
  socklen_t length = 0;
};

Resolved resolve(const std::string& host, uint16_t port, bool passive, const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  int status = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (status != 0 || found == nullptr) {
    fail_expected(what, "a resolvable host", "'" + host + "' (" + gai_strerror(status) + ")");
  }
  Resolved resolved;
  std::memcpy(&resolved.address, found->ai_addr, found->ai_addrlen);
  resolved.length = found->ai_addrlen;
  freeaddrinfo(found);
  return resolved;
}

void validate(const LinkOptions& options) {
  const std::string where = "link options";
  if (options.upstream_port == 0) fail_expected(where, "an upstream port (1-65535)", "0");
  if (options.delay_ms < 0) {
    fail_expected(where, "delay_ms >= 0", std::to_string(options.delay_ms));
  }
  if (!(options.loss >= 0.0 && options.loss <= 1.0)) {
    fail_expected(where, "loss in [0, 1]", std::to_string(options.loss));
  }
  if (options.loss_stall_ms < 0) {
    fail_expected(where, "loss_stall_ms >= 0", std::to_string(options.loss_stall_ms));
  }
  if (!(options.trace_offset_s >= 0.0)) {
    fail_expected(where, "trace_offset_s >= 0", std::to_string(options.trace_offset_s));
  }
  if (options.max_queue_bytes < kPacketBytes) {
    fail_expected(where, "max_queue_bytes >= " + std::to_string(kPacketBytes),
                  std::to_string(options.max_queue_bytes));
  }
  for (const auto& window : options.outages) {
    if (!(window.start_s >= 0.0 && window.end_s > window.start_s)) {
      fail_expected(where, "outage windows with 0 <= start < end",
                    "[" + std::to_string(window.start_s) + ", " + std::to_string(window.end_s) +
                        ")");
    }
  }
}

// Bytes that crossed the bottleneck, on their way to the far side.
struct Piece {
  int64_t due_ms;
  std::string data;
  size_t offset = 0;
};

// Bytes read from a source, waiting in the shared bottleneck queue.
struct Segment {
  uint64_t connection;
  std::string data;
  size_t offset = 0;
};

// One direction of one connection.
struct Half {
  std::deque<Piece> in_flight;
  int64_t queued = 0;       // in the bottleneck queue
  int64_t buffered = 0;     // read from the source, not yet written to the destination
  bool eof_read = false;    // the source shut down its sending side
  bool shut = false;        // that shutdown was forwarded to the destination
  bool want_write = false;  // the destination's send buffer was full
};

struct Connection {
  uint64_t id = 0;
  int client_fd = -1;
  int upstream_fd = -1;
  bool connecting = true;
  bool broken = false;
  Half up;    // client -> upstream
  Half down;  // upstream -> client
};

struct Direction {
  int index = 0;  // 0 uplink, 1 downlink
  const Trace* trace = nullptr;  // nullptr: unlimited
  std::deque<Segment> queue;
  int64_t queued_bytes = 0;
  int64_t cursor = 0;  // next trace opportunity
  uint64_t packets = 0;
};

}  // namespace

OutageWindow parse_outage(const std::string& text) {
  const std::string where = "outage '" + text + "'";
  size_t colon = text.find(':');
  OutageWindow window;
  if (colon == std::string::npos || !parse_seconds(text.substr(0, colon), window.start_s) ||
      !parse_seconds(text.substr(colon + 1), window.end_s)) {
    fail_expected(where, "START:END in seconds from the link start (e.g. 10:12.5)",
                  "'" + text + "'");
  }
  if (!(window.start_s >= 0.0 && window.end_s > window.start_s)) {
    fail_expected(where, "0 <= START < END", "'" + text + "'");
  }
  return window;
}

LinkOptions link_default_options() { return LinkOptions{}; }

struct LinkEmulator::Impl {
  LinkOptions options;
  std::vector<std::pair<int64_t, int64_t>> outages_ms;  // sorted, merged [start, end)
  int64_t offset_ms = 0;
  Resolved upstream;
  int listen_fd = -1;
  int wake_fd = -1;
  uint16_t port = 0;
  Clock::time_point start;
  std::thread thread;
  std::atomic<bool> stopping{false};
  bool stopped = false;

  std::map<uint64_t, Connection> connections;
  uint64_t next_id = 1;
  int64_t accept_paused_until = 0;
  Direction up_dir, down_dir;

  std::atomic<int64_t> bytes_up{0}, bytes_down{0}, connections_total{0}, connections_active{0};
  std::atomic<int64_t> packets_up{0}, packets_down{0}, lost_up{0}, lost_down{0};

  int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  }

  // The end of the outage covering t, or t when the link is up at t.
  int64_t up_again_at(int64_t t) const {
    for (const auto& [begin, end] : outages_ms) {
      if (t < begin) break;
      if (t < end) return end;
    }
    return t;
  }
  bool in_outage(int64_t t) const { return up_again_at(t) != t; }

  Half& half_of(Connection& c, const Direction& d) { return d.index == 0 ? c.up : c.down; }

  // Moves a slice of a released packet to its connection's in-flight queue.
  void deliver_later(uint64_t id, const Direction& d, std::string_view bytes, int64_t due) {
    auto it = connections.find(id);
    if (it == connections.end() || it->second.broken) return;
    Half& half = half_of(it->second, d);
    if (!half.in_flight.empty() && half.in_flight.back().due_ms == due) {
      half.in_flight.back().data.append(bytes);
    } else {
      half.in_flight.push_back(Piece{due, std::string(bytes)});
    }
  }

  // Takes up to `budget` bytes from the head of the queue as one packet released at link
  // time `at`; returns false when the queue held nothing deliverable.
  bool release_packet(Direction& d, int64_t budget, int64_t at) {
    bool lost = false;
    bool decided = false;
    int64_t due = at + options.delay_ms;
    bool any = false;
    while (budget > 0 && !d.queue.empty()) {
      Segment& segment = d.queue.front();
      auto it = connections.find(segment.connection);
      int64_t left = static_cast<int64_t>(segment.data.size() - segment.offset);
      if (it == connections.end() || it->second.broken) {
        d.queued_bytes -= left;
        d.queue.pop_front();
        continue;
      }
      if (!decided) {
        decided = true;
        lost = packet_lost(options.seed, d.index, d.packets, options.loss);
        ++d.packets;
        (d.index == 0 ? packets_up : packets_down)++;
        if (lost) {
          (d.index == 0 ? lost_up : lost_down)++;
          due += options.loss_stall_ms;
        }
      }
      int64_t take = std::min(left, budget);
      half_of(it->second, d).queued -= take;
      deliver_later(segment.connection, d,
                    std::string_view(segment.data).substr(segment.offset, take), due);
      segment.offset += take;
      budget -= take;
      d.queued_bytes -= take;
      any = true;
      if (segment.offset == segment.data.size()) d.queue.pop_front();
    }
    return any;
  }

  // Moves bytes across the bottleneck for every opportunity up to now.
  void release(Direction& d, int64_t now) {
    if (d.trace == nullptr) {
      if (in_outage(now)) return;
      while (release_packet(d, kPacketBytes, now)) {
      }
      return;
    }
    while (d.queued_bytes > 0) {
      int64_t at = d.trace->opportunity_time_ms(d.cursor) - offset_ms;
      if (at > now) break;
      int64_t resume = up_again_at(at);
      if (resume != at) {
        // The link is down: every opportunity inside the outage is gone.
        d.cursor = std::max(d.cursor, d.trace->opportunities_before(resume + offset_ms));
        continue;
      }
      release_packet(d, kPacketBytes, at);
      ++d.cursor;
    }
  }

  // Writes the in-flight bytes that are due to `fd`.
  void flush(Connection& c, Half& half, int fd, int64_t now, std::atomic<int64_t>& counter) {
    half.want_write = false;
    if (in_outage(now)) return;
    while (!half.in_flight.empty() && half.in_flight.front().due_ms <= now) {
      Piece& piece = half.in_flight.front();
      ssize_t n = ::send(fd, piece.data.data() + piece.offset, piece.data.size() - piece.offset,
                         MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          half.want_write = true;
        } else {
          c.broken = true;
        }
        return;
      }
      piece.offset += static_cast<size_t>(n);
      half.buffered -= n;
      counter += n;
      if (piece.offset == piece.data.size()) half.in_flight.pop_front();
    }
  }

  bool wants_more(const Half& half) const {
    return !half.eof_read && half.queued < options.max_queue_bytes &&
           half.buffered - half.queued < kMaxInFlightBytes;
  }

  // Reads what the source has into the direction's queue.
  void read_from(Connection& c, Half& half, Direction& d, int fd, int64_t now) {
    std::string buffer;
    while (wants_more(half)) {
      size_t room =
          static_cast<size_t>(std::min<int64_t>(kReadChunk, options.max_queue_bytes - half.queued));
      buffer.resize(room);
      ssize_t n = ::recv(fd, buffer.data(), room, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.broken = true;
        return;
      }
      if (n == 0) {
        half.eof_read = true;
        return;
      }
      buffer.resize(static_cast<size_t>(n));
      if (d.queued_bytes == 0 && d.trace != nullptr) {
        // An idle link does not bank opportunities: the ones already past are gone.
        d.cursor = std::max(d.cursor, d.trace->opportunities_before(now + offset_ms));
      }
      d.queue.push_back(Segment{c.id, std::move(buffer)});
      buffer = std::string();
      d.queued_bytes += n;
      half.queued += n;
      half.buffered += n;
    }
  }

  void accept_all(int64_t now) {
    while (true) {
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        // Out of descriptors: the pending connection stays readable, so look again later
        // instead of spinning on it.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          accept_paused_until = now + kAcceptPauseMs;
        }
        return;
      }
      int upstream_fd = ::socket(upstream.address.ss_family,
                                 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (upstream_fd < 0) {
        close_with_reset(fd);
        continue;
      }
      set_nodelay(fd);
      set_nodelay(upstream_fd);
      int status = ::connect(upstream_fd, reinterpret_cast<const sockaddr*>(&upstream.address),
                             upstream.length);
      Connection c;
      c.id = next_id++;
      c.client_fd = fd;
      c.upstream_fd = upstream_fd;
      c.connecting = status != 0;
      if (status != 0 && errno != EINPROGRESS) c.broken = true;
      connections.emplace(c.id, std::move(c));
      ++connections_total;
      ++connections_active;
    }
  }

  void finish_connect(Connection& c) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(c.upstream_fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
      c.broken = true;
      return;
    }
    c.connecting = false;
  }

  // Forwards half-closes once everything before them arrived; returns true when the
  // connection is over.
  bool settle(Connection& c) {
    if (c.broken) return true;
    if (!c.connecting && c.up.eof_read && c.up.buffered == 0 && !c.up.shut) {
      ::shutdown(c.upstream_fd, SHUT_WR);
      c.up.shut = true;
    }
    if (c.down.eof_read && c.down.buffered == 0 && !c.down.shut) {
      ::shutdown(c.client_fd, SHUT_WR);
      c.down.shut = true;
    }
    return c.up.shut && c.down.shut;
  }

  void close_connection(Connection& c) {
    if (c.broken) {
      close_with_reset(c.client_fd);
      close_with_reset(c.upstream_fd);
    } else {
      ::close(c.client_fd);
      ::close(c.upstream_fd);
    }
    --connections_active;
  }

  // Earliest link time at which something is due, for the poll timeout.
  int64_t next_wake(int64_t now) const {
    int64_t wake = kNever;
    for (const Direction* d : {&up_dir, &down_dir}) {
      if (d->queued_bytes == 0) continue;
      int64_t at = d->trace ? d->trace->opportunity_time_ms(d->cursor) - offset_ms : now;
      wake = std::min(wake, up_again_at(std::max(at, now)));
    }
    for (const auto& [id, c] : connections) {
      for (const Half* half : {&c.up, &c.down}) {
        if (half->in_flight.empty() || half->want_write) continue;
        if (half == &c.up && c.connecting) continue;
        wake = std::min(wake, up_again_at(std::max(half->in_flight.front().due_ms, now)));
      }
    }
    return wake;
  }

  void run() {
    std::vector<pollfd> fds;
    std::vector<std::pair<uint64_t, bool>> owners;  // connection id, is the client side
    while (!stopping.load()) {
      int64_t now = now_ms();
      release(up_dir, now);
      release(down_dir, now);
      for (auto it = connections.begin(); it != connections.end();) {
        Connection& c = it->second;
        if (!c.connecting && !c.broken) flush(c, c.up, c.upstream_fd, now, bytes_up);
        if (!c.broken) flush(c, c.down, c.client_fd, now, bytes_down);
        if (settle(c)) {
          close_connection(c);
          it = connections.erase(it);
        } else {
          ++it;
        }
      }

      fds.clear();
      owners.clear();
      fds.push_back(pollfd{wake_fd, POLLIN, 0});
      fds.push_back(pollfd{now >= accept_paused_until ? listen_fd : -1, POLLIN, 0});
      owners.emplace_back(0, false);
      owners.emplace_back(0, false);
      for (const auto& [id, c] : connections) {
        short client_events = 0, upstream_events = 0;
        if (wants_more(c.up)) client_events |= POLLIN;
        if (c.down.want_write) client_events |= POLLOUT;
        if (c.connecting) {
          upstream_events |= POLLOUT;
        } else {
          if (wants_more(c.down)) upstream_events |= POLLIN;
          if (c.up.want_write) upstream_events |= POLLOUT;
        }
        // A descriptor with nothing wanted is left out: poll would keep reporting its
        // POLLHUP while the other side still drains.
        fds.push_back(pollfd{client_events ? c.client_fd : -1, client_events, 0});
        owners.emplace_back(id, true);
        fds.push_back(pollfd{upstream_events ? c.upstream_fd : -1, upstream_events, 0});
        owners.emplace_back(id, false);
      }

      int64_t wake = next_wake(now);
      int timeout = static_cast<int>(
          wake == kNever ? kMaxSleepMs : std::clamp<int64_t>(wake - now, 0, kMaxSleepMs));
      int ready = ::poll(fds.data(), fds.size(), timeout);
      if (ready < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (ready == 0) continue;
      now = now_ms();
      if (fds[1].revents & POLLIN) accept_all(now);
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        auto it = connections.find(owners[i].first);
        if (it == connections.end()) continue;
        Connection& c = it->second;
        if (c.broken) continue;
        const short revents = fds[i].revents;
        if (owners[i].second) {
          if (revents & POLLOUT) c.down.want_write = false;
          if ((fds[i].events & POLLIN) && (revents & (POLLIN | POLLHUP | POLLERR))) {
            read_from(c, c.up, up_dir, c.client_fd, now);
          } else if (revents & POLLERR) {
            c.broken = true;
          }
        } else if (c.connecting) {
          if (revents & (POLLOUT | POLLERR | POLLHUP)) finish_connect(c);
        } else {
          if (revents & POLLOUT) c.up.want_write = false;
          if ((fds[i].events & POLLIN) && (revents & (POLLIN | POLLHUP | POLLERR))) {
            read_from(c, c.down, down_dir, c.upstream_fd, now);
          } else if (revents & POLLERR) {
            c.broken = true;
          }
        }
      }
    }
    for (auto& [id, c] : connections) close_connection(c);
    connections.clear();
  }
};

LinkEmulator::LinkEmulator(LinkOptions options) : impl_(std::make_unique<Impl>()) {
  validate(options);
  Impl& s = *impl_;
  s.options = std::move(options);
  for (const auto& window : s.options.outages) {
    s.outages_ms.emplace_back(std::llround(window.start_s * 1000.0),
                              std::llround(window.end_s * 1000.0));
  }
  std::sort(s.outages_ms.begin(), s.outages_ms.end());
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto& window : s.outages_ms) {
    if (!merged.empty() && window.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, window.second);
    } else {
      merged.push_back(window);
    }
  }
  s.outages_ms = std::move(merged);
  s.offset_ms = std::llround(s.options.trace_offset_s * 1000.0);
  s.up_dir.index = 0;
  s.down_dir.index = 1;
  if (s.options.uplink_trace) s.up_dir.trace = &*s.options.uplink_trace;
  if (s.options.downlink_trace) s.down_dir.trace = &*s.options.downlink_trace;

  s.upstream = resolve(s.options.upstream_host, s.options.upstream_port, false, "link upstream");
  Resolved listen_at = resolve(s.options.listen_host, s.options.listen_port, true, "link listen");
  const std::string listen_name =
      s.options.listen_host + ":" + std::to_string(s.options.listen_port);
  s.listen_fd = ::socket(listen_at.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.listen_fd < 0) throw Error("link: cannot create a socket: " + errno_text());
  int one = 1;
  setsockopt(s.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s.listen_fd, reinterpret_cast<const sockaddr*>(&listen_at.address),
             listen_at.length) != 0 ||
      ::listen(s.listen_fd, 128) != 0) {
    std::string reason = errno_text();
    ::close(s.listen_fd);
    throw Error("link: cannot listen on " + listen_name + ": " + reason);
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&bound), &length);
  s.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.wake_fd < 0) {
    ::close(s.listen_fd);
    throw Error("link: cannot create an eventfd: " + errno_text());
  }
  s.start = Clock::now();
  s.thread = std::thread([&s] { s.run(); });
}

LinkEmulator::~LinkEmulator() { stop(); }

void LinkEmulator::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t written = ::write(s.wake_fd, &one, sizeof one);
  if (s.thread.joinable()) s.thread.join();
  ::close(s.listen_fd);
  ::close(s.wake_fd);
}

uint16_t LinkEmulator::port() const { return impl_->port; }

LinkStats LinkEmulator::stats() const {
  const Impl& s = *impl_;
  LinkStats stats;
  stats.elapsed_s = std::chrono::duration<double>(Clock::now() - s.start).count();
  stats.bytes_up = s.bytes_up.load();
  stats.bytes_down = s.bytes_down.load();
  stats.connections_total = s.connections_total.load();
  stats.connections_active = s.connections_active.load();
  stats.packets_up = s.packets_up.load();
  stats.packets_down = s.packets_down.load();
  stats.packets_lost_up = s.lost_up.load();
  stats.packets_lost_down = s.lost_down.load();
  return stats;
}

std::chrono::steady_clock::time_point LinkEmulator::start_time() const { return impl_->start; }

int64_t LinkEmulator::now_ms() const { return impl_->now_ms(); }

const LinkOptions& LinkEmulator::options() const { return impl_->options; }

}  // namespace edgefm::net
