// The link emulator through real sockets on 127.0.0.1: throughput against the trace,
// outages, delay, sharing, half-close and shutdown. Timing assertions are one-sided (a stall
// is at least as long as configured) or compare bytes delivered with bytes the trace permits
// over the same window, so a slow machine cannot make them fail.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "net/link.h"

namespace fs = std::filesystem;
using namespace edgefm::net;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

Trace bundled(const std::string& name) {
  return Trace::load(fs::path(EDGEFM_TRACE_DIR) / name);
}

// Byte k of every test stream; the receiver checks it, so reordering or loss shows.
char pattern_byte(int64_t k) { return static_cast<char>(k % 251); }

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool recv_exact(int fd, char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::recv(fd, data, size, 0);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A TCP server on an ephemeral port that runs `handler` on each connection in a thread.
class Server {
 public:
  explicit Server(std::function<void(int)> handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      throw std::runtime_error("test server cannot listen");
    }
    socklen_t length = sizeof address;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] {
      while (true) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        std::lock_guard<std::mutex> lock(mutex_);
        fds_.push_back(fd);
        workers_.emplace_back([this, fd] { handler_(fd); });
      }
    });
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(listen_fd_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& worker : workers_) worker.join();
    for (int fd : fds_) ::close(fd);
  }
  uint16_t port() const { return port_; }
  int accepted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(fds_.size());
  }

 private:
  std::function<void(int)> handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> workers_;
};

// Echoes every byte; on end of stream shuts down its sending side.
void echo_handler(int fd) {
  char buffer[65536];
  while (true) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    if (!send_all(fd, buffer, static_cast<size_t>(n))) break;
  }
  ::shutdown(fd, SHUT_WR);
}

// Receives test streams, checks the pattern and logs when bytes arrived.
class Sink {
 public:
  struct Arrival {
    Clock::time_point at;
    int connection;
    int64_t bytes;
  };

  Sink() : server_([this](int fd) { receive(fd); }) {}
  uint16_t port() const { return server_.port(); }
  bool corrupted() const { return corrupted_.load(); }

  // Bytes (of one connection, or all when connection < 0) that arrived in [from, to).
  int64_t bytes_between(Clock::time_point from, Clock::time_point to, int connection = -1) {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t total = 0;
    for (const auto& arrival : log_) {
      if (arrival.at >= from && arrival.at < to &&
          (connection < 0 || arrival.connection == connection)) {
        total += arrival.bytes;
      }
    }
    return total;
  }
  int64_t total() { return bytes_between(Clock::time_point::min(), Clock::time_point::max()); }
  // The total once it reaches `expected`, or after a few seconds whatever it is.
  int64_t wait_for_total(int64_t expected) {
    for (int i = 0; i < 500 && total() < expected; ++i) std::this_thread::sleep_for(milliseconds(10));
    return total();
  }
  std::vector<Arrival> log() {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }

 private:
  void receive(int fd) {
    int connection = next_connection_++;
    std::vector<char> buffer(65536);
    int64_t offset = 0;
    while (true) {
      ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) break;
      Clock::time_point now = Clock::now();
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[static_cast<size_t>(i)] != pattern_byte(offset + i)) corrupted_ = true;
      }
      offset += n;
      std::lock_guard<std::mutex> lock(mutex_);
      log_.push_back(Arrival{now, connection, n});
    }
  }

  std::mutex mutex_;
  std::vector<Arrival> log_;
  std::atomic<bool> corrupted_{false};
  std::atomic<int> next_connection_{0};
  Server server_;  // last: its threads use the members above
};

// Sends the test pattern as fast as the link takes it until stopped.
class BulkSender {
 public:
  explicit BulkSender(uint16_t port) : fd_(connect_to(port)) {
    timeval timeout{0, 50 * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    thread_ = std::thread([this] {
      std::vector<char> chunk(16384);
      int64_t offset = 0;
      while (!stop_) {
        for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = pattern_byte(offset + static_cast<int64_t>(i));
        size_t sent = 0;
        while (sent < chunk.size() && !stop_) {
          ssize_t n = ::send(fd_, chunk.data() + sent, chunk.size() - sent, MSG_NOSIGNAL);
          if (n > 0) {
            sent += static_cast<size_t>(n);
          } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
          } else {
            failed_ = true;
            return;
          }
        }
        offset += static_cast<int64_t>(sent);
        sent_ = offset;
      }
    });
  }
  BulkSender(const BulkSender&) = delete;
  BulkSender& operator=(const BulkSender&) = delete;
  ~BulkSender() {
    stop();
    ::close(fd_);
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool connected() const { return fd_ >= 0; }
  bool failed() const { return failed_; }
  int64_t sent() const { return sent_; }
  int fd() const { return fd_; }

 private:
  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<int64_t> sent_{0};
  std::thread thread_;
};

void sleep_until_link_ms(const LinkEmulator& link, int64_t t_ms) {
  std::this_thread::sleep_until(link.start_time() + milliseconds(t_ms));
}

Clock::time_point at_link_ms(const LinkEmulator& link, int64_t t_ms) {
  return link.start_time() + milliseconds(t_ms);
}

int64_t link_ms_of(const LinkEmulator& link, Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t - link.start_time()).count();
}

// One echo round trip of `size` bytes; returns the link time (ms) the answer completed.
int64_t echo_round_trip(const LinkEmulator& link, int fd, size_t size) {
  std::vector<char> out(size), in(size);
  for (size_t i = 0; i < size; ++i) out[i] = pattern_byte(static_cast<int64_t>(i));
  EXPECT_TRUE(send_all(fd, out.data(), size));
  EXPECT_TRUE(recv_exact(fd, in.data(), size));
  EXPECT_EQ(in, out);
  return link_ms_of(link, Clock::now());
}

LinkOptions options_to(uint16_t upstream_port) {
  LinkOptions options = link_default_options();
  options.upstream_port = upstream_port;
  return options;
}

}  // namespace

TEST(LinkOptions, DefaultsAndValidation) {
  LinkOptions options = link_default_options();
  EXPECT_EQ(options.delay_ms, 40);
  EXPECT_EQ(options.listen_port, 0);
  EXPECT_FALSE(options.uplink_trace.has_value());
  EXPECT_FALSE(options.downlink_trace.has_value());
  EXPECT_EQ(options.loss, 0.0);

  EXPECT_THROW(LinkEmulator{options}, edgefm::Error);  // no upstream port
  options.upstream_port = 9;
  options.loss = 1.5;
  EXPECT_THROW(LinkEmulator{options}, edgefm::Error);
  options.loss = 0.0;
  options.outages = {{3.0, 2.0}};
  EXPECT_THROW(LinkEmulator{options}, edgefm::Error);
  options.outages = {};
  options.delay_ms = -1;
  EXPECT_THROW(LinkEmulator{options}, edgefm::Error);
}

TEST(LinkOptions, ParsesOutageWindows) {
  OutageWindow window = parse_outage("10:12.5");
  EXPECT_DOUBLE_EQ(window.start_s, 10.0);
  EXPECT_DOUBLE_EQ(window.end_s, 12.5);
  for (const char* bad : {"", "10", "10:", ":12", "12:10", "5:5", "a:b", "-1:2", "1:2:3"}) {
    EXPECT_THROW(parse_outage(bad), edgefm::Error) << bad;
  }
}

// Measured goodput through the proxy against the trace over exactly the measured window of
// the trace (not the whole trace's mean): the bytes the sink received while link time was in
// [1 s, 4 s) against the bytes the trace's opportunities in [1 s - delay, 4 s - delay) carry,
// shifted by the trace offset. Verizon-LTE-short, 10 s in: about 4.7 Mbit/s.
TEST(LinkEmulator, UplinkThroughputFollowsTheTrace) {
  Sink sink;
  LinkOptions options = options_to(sink.port());
  options.uplink_trace = bundled("Verizon-LTE-short.up");
  options.delay_ms = 20;
  options.trace_offset_s = 10.0;
  LinkEmulator link(options);
  ASSERT_NE(link.port(), 0);
  BulkSender sender(link.port());
  ASSERT_TRUE(sender.connected());
  const int64_t from = 1000, to = 4000;
  sleep_until_link_ms(link, to + 100);
  sender.stop();
  ASSERT_FALSE(sender.failed());

  const int64_t measured = sink.bytes_between(at_link_ms(link, from), at_link_ms(link, to));
  const int64_t offset_ms = 10000;
  const int64_t permitted = options.uplink_trace->capacity_bytes(
      from - options.delay_ms + offset_ms, to - options.delay_ms + offset_ms);
  const double seconds = (to - from) / 1000.0;
  std::printf("uplink: measured %.3f Mbit/s, trace permits %.3f Mbit/s over the same window "
              "(whole-trace mean %.3f)\n",
              measured * 8 / seconds / 1e6, permitted * 8 / seconds / 1e6,
              options.uplink_trace->mean_rate_bps() / 1e6);
  ASSERT_GT(permitted, 0);
  EXPECT_NEAR(static_cast<double>(measured) / static_cast<double>(permitted), 1.0, 0.10);
  // Nothing can cross faster than the trace allows, whatever the scheduling.
  link.stop();
  LinkStats stats = link.stats();
  const int64_t all_permitted =
      options.uplink_trace->capacity_bytes(offset_ms, link.now_ms() + offset_ms);
  EXPECT_LE(stats.bytes_up, all_permitted);
  EXPECT_EQ(stats.connections_total, 1);
  // Everything the link wrote reaches the sink, intact.
  EXPECT_EQ(sink.wait_for_total(stats.bytes_up), stats.bytes_up);
  EXPECT_FALSE(sink.corrupted());
}

// Two connections share one bottleneck: together they get the trace's capacity, and neither
// is starved.
TEST(LinkEmulator, ConnectionsShareTheBottleneck) {
  Sink sink;
  LinkOptions options = options_to(sink.port());
  options.uplink_trace = bundled("TMobile-LTE-short.up");
  options.delay_ms = 10;
  LinkEmulator link(options);
  BulkSender first(link.port()), second(link.port());
  const int64_t from = 1000, to = 3000;
  sleep_until_link_ms(link, to + 100);
  first.stop();
  second.stop();

  const int64_t measured = sink.bytes_between(at_link_ms(link, from), at_link_ms(link, to));
  const int64_t permitted = options.uplink_trace->capacity_bytes(from - 10, to - 10);
  EXPECT_NEAR(static_cast<double>(measured) / static_cast<double>(permitted), 1.0, 0.10);
  for (int connection : {0, 1}) {
    int64_t share = sink.bytes_between(at_link_ms(link, from), at_link_ms(link, to), connection);
    EXPECT_GT(share, measured / 5) << "connection " << connection;
  }
  EXPECT_FALSE(sink.corrupted());
  EXPECT_EQ(link.stats().connections_total, 2);
}

// The downlink follows its own trace when one is given (the uplink is unlimited here).
TEST(LinkEmulator, DownlinkThroughputFollowsItsTrace) {
  Server source([](int fd) {
    std::vector<char> chunk(16384);
    int64_t offset = 0;
    while (true) {
      for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = pattern_byte(offset + static_cast<int64_t>(i));
      if (!send_all(fd, chunk.data(), chunk.size())) return;
      offset += static_cast<int64_t>(chunk.size());
    }
  });
  LinkOptions options = options_to(source.port());
  options.downlink_trace = bundled("ATT-LTE-driving-2016.up");
  options.delay_ms = 10;
  LinkEmulator link(options);
  int fd = connect_to(link.port());
  ASSERT_GE(fd, 0);
  const int64_t from = 1000, to = 3000;
  int64_t in_window = 0, total = 0;
  bool intact = true;
  std::vector<char> buffer(65536);
  while (link.now_ms() < to + 50) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    ASSERT_GT(n, 0);
    int64_t now = link.now_ms();
    for (ssize_t i = 0; i < n; ++i) intact &= buffer[static_cast<size_t>(i)] == pattern_byte(total + i);
    total += n;
    if (now >= from && now < to) in_window += n;
  }
  const int64_t permitted = options.downlink_trace->capacity_bytes(from - 10, to - 10);
  std::printf("downlink: measured %lld bytes, trace permits %lld\n",
              static_cast<long long>(in_window), static_cast<long long>(permitted));
  EXPECT_NEAR(static_cast<double>(in_window) / static_cast<double>(permitted), 1.0, 0.10);
  EXPECT_TRUE(intact);
  ::close(fd);
  link.stop();
}

// The one-way delay applies in each direction: an echo round trip takes at least twice it.
TEST(LinkEmulator, DelayAddsToTheRoundTrip) {
  Server echo(echo_handler);
  LinkOptions options = options_to(echo.port());
  options.delay_ms = 30;
  LinkEmulator link(options);
  int fd = connect_to(link.port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 5; ++i) {
    auto begin = Clock::now();
    echo_round_trip(link, fd, 100 + 1000 * i);
    double rtt_ms = std::chrono::duration<double, std::milli>(Clock::now() - begin).count();
    EXPECT_GE(rtt_ms, 2 * options.delay_ms) << "round trip " << i;
    EXPECT_LT(rtt_ms, 20 * options.delay_ms) << "round trip " << i;
  }
  ::close(fd);
}

// During an outage nothing is delivered in either direction; traffic resumes afterwards on
// the same connections.
TEST(LinkEmulator, OutageStallsTrafficForItsLength) {
  Server echo(echo_handler);
  Sink sink;
  const int64_t outage_from = 800, outage_to = 1800, delay = 10;
  // Two links: one to an echo server, one to a sink, with the same outage window.
  LinkOptions echo_options = options_to(echo.port());
  echo_options.uplink_trace = bundled("TMobile-LTE-short.up");
  echo_options.delay_ms = delay;
  echo_options.outages = {{outage_from / 1000.0, outage_to / 1000.0}};
  LinkOptions sink_options = echo_options;
  sink_options.upstream_port = sink.port();
  LinkEmulator link(echo_options);
  LinkEmulator sink_link(sink_options);

  int fd = connect_to(link.port());
  ASSERT_GE(fd, 0);
  // Before the outage: a round trip is quick.
  int64_t before = echo_round_trip(link, fd, 200);
  ASSERT_LT(before, outage_from) << "the machine is too slow for this test's schedule";

  // Inside the outage: a request cannot reach the server before the outage ends, and the
  // answer needs another one-way delay.
  sleep_until_link_ms(link, outage_from + 100);
  int64_t sent_at = link.now_ms();
  int64_t answered_at = echo_round_trip(link, fd, 200);
  std::printf("outage: request at %lld ms answered at %lld ms (outage ends at %lld ms)\n",
              static_cast<long long>(sent_at), static_cast<long long>(answered_at),
              static_cast<long long>(outage_to));
  if (sent_at < outage_to) {
    EXPECT_GE(answered_at, outage_to + delay);
    EXPECT_LT(answered_at, outage_to + 10000);
  }

  // A stream that starts inside the outage: not one byte arrives before it ends.
  sleep_until_link_ms(sink_link, outage_from + 50);
  BulkSender sender(sink_link.port());
  sleep_until_link_ms(sink_link, outage_to + 800);
  sender.stop();
  EXPECT_FALSE(sender.failed());
  EXPECT_EQ(sink.bytes_between(Clock::time_point::min(), at_link_ms(sink_link, outage_to)), 0);
  EXPECT_GT(sink.bytes_between(at_link_ms(sink_link, outage_to), Clock::time_point::max()), 0);
  EXPECT_FALSE(sink.corrupted());

  // The connection that lived through the outage still works.
  echo_round_trip(link, fd, 5000);
  ::close(fd);
}

// A stream that runs across an outage stalls (no bytes in the window, allowing for the
// receiver reading late) and carries on intact after it.
TEST(LinkEmulator, StreamSurvivesAnOutage) {
  Sink sink;
  LinkOptions options = options_to(sink.port());
  options.uplink_trace = bundled("Verizon-LTE-short.up");
  options.delay_ms = 20;
  const int64_t outage_from = 700, outage_to = 1700;
  options.outages = {{outage_from / 1000.0, outage_to / 1000.0}};
  LinkEmulator link(options);
  BulkSender sender(link.port());
  sleep_until_link_ms(link, outage_to + 1000);
  sender.stop();
  ASSERT_FALSE(sender.failed());
  // Bytes written before the outage may still be read a little after it began.
  const int64_t reader_slack = 250;
  EXPECT_EQ(sink.bytes_between(at_link_ms(link, outage_from + reader_slack),
                               at_link_ms(link, outage_to)),
            0);
  EXPECT_GT(sink.bytes_between(link.start_time(), at_link_ms(link, outage_from)), 0);
  const int64_t after = sink.bytes_between(at_link_ms(link, outage_to + 200),
                                           at_link_ms(link, outage_to + 1000));
  const int64_t permitted = options.uplink_trace->capacity_bytes(outage_to + 200 - 20,
                                                                 outage_to + 1000 - 20);
  EXPECT_NEAR(static_cast<double>(after) / static_cast<double>(permitted), 1.0, 0.10);
  EXPECT_FALSE(sink.corrupted());
}

// Loss as stalls: lost packets hold their connection back but nothing is dropped.
TEST(LinkEmulator, LossStallsButDeliversEverything) {
  Server echo(echo_handler);
  LinkOptions options = options_to(echo.port());
  options.uplink_trace = bundled("TMobile-LTE-short.up");
  options.delay_ms = 5;
  options.loss = 0.2;
  options.loss_stall_ms = 100;
  options.seed = 3;
  LinkEmulator link(options);
  int fd = connect_to(link.port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 4; ++i) echo_round_trip(link, fd, 30000);
  ::close(fd);
  LinkStats stats = link.stats();
  EXPECT_GT(stats.packets_up, 0);
  EXPECT_GT(stats.packets_lost_up, 0);
  EXPECT_LT(stats.packets_lost_up, stats.packets_up);
  // The same seed decides the same packet numbers: the counted losses are exactly the lost
  // numbers among the first packets_up packets.
  int64_t expected_lost = 0;
  for (int64_t n = 0; n < stats.packets_up; ++n) {
    expected_lost += packet_lost(options.seed, 0, static_cast<uint64_t>(n), options.loss);
  }
  EXPECT_EQ(stats.packets_lost_up, expected_lost);
}

// End of stream travels through the link after the data, in each direction.
TEST(LinkEmulator, ForwardsHalfClose) {
  // Reads everything, then answers with the byte count and closes.
  Server counter([](int fd) {
    char buffer[4096];
    int64_t total = 0;
    while (true) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      total += n;
    }
    std::string answer = std::to_string(total);
    send_all(fd, answer.data(), answer.size());
    ::shutdown(fd, SHUT_WR);
  });
  LinkOptions options = options_to(counter.port());
  options.uplink_trace = bundled("TMobile-LTE-short.up");
  options.delay_ms = 5;
  LinkEmulator link(options);
  int fd = connect_to(link.port());
  ASSERT_GE(fd, 0);
  std::vector<char> data(50000, 'x');
  ASSERT_TRUE(send_all(fd, data.data(), data.size()));
  ::shutdown(fd, SHUT_WR);
  std::string answer;
  char buffer[64];
  while (true) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_EQ(answer, "50000");
  ::close(fd);
  // The link closes its side once both directions ended.
  for (int i = 0; i < 100 && link.stats().connections_active > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(link.stats().connections_active, 0);
}

// A client whose upstream refuses is closed; the link keeps serving others.
TEST(LinkEmulator, UnreachableUpstreamClosesTheClient) {
  uint16_t closed_port;
  {
    Server temporary([](int) {});
    closed_port = temporary.port();
  }
  LinkOptions options = options_to(closed_port);
  options.delay_ms = 0;
  LinkEmulator link(options);
  int fd = connect_to(link.port());
  ASSERT_GE(fd, 0);
  char byte;
  pollfd ready{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 5000), 1);
  EXPECT_LE(::recv(fd, &byte, 1, 0), 0);
  ::close(fd);
  EXPECT_EQ(link.stats().connections_total, 1);
}

// stop() returns with connections open, and clients see their connection end.
TEST(LinkEmulator, StopClosesEverything) {
  Server echo(echo_handler);
  LinkOptions options = options_to(echo.port());
  options.delay_ms = 1;
  LinkEmulator link(options);
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    fds.push_back(connect_to(link.port()));
    ASSERT_GE(fds.back(), 0);
    echo_round_trip(link, fds.back(), 10);
  }
  EXPECT_EQ(link.stats().connections_active, 4);
  link.stop();
  link.stop();  // idempotent
  EXPECT_EQ(link.stats().connections_active, 0);
  for (int fd : fds) {
    char byte;
    EXPECT_LE(::recv(fd, &byte, 1, 0), 0);
    ::close(fd);
  }
  EXPECT_LT(connect_to(link.port()), 0);
}
