#include "cloud/http_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace edgefm::cloud {

namespace {

using Clock = std::chrono::steady_clock;

// Set by a handler (through close_after_answer) for the request its thread serves.
thread_local bool t_close_after_answer = false;

Clock::time_point after(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int millis_until(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void address_of(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  if (rc != 0) return;
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  ip = text;
}

// One connection between requests: owned by the poller while it waits for a request head
// (or lingers before closing), by a worker while one request is served.
struct Connection {
  enum class Phase { idle, head, linger };
  int fd = -1;
  std::string buffer;  // received, not yet consumed: the start of the next request
  size_t scanned = 0;  // buffer prefix known to hold no end of head
  Phase phase = Phase::idle;
  Clock::time_point deadline;
  size_t discarded = 0;  // while lingering
};

// The socket under one request, for httplib's parser: first the bytes the poller already
// received, then the socket with bounded waits. Reads of the body stop at a deadline.
class ConnectionStream : public httplib::Stream {
 public:
  ConnectionStream(int fd, std::string pending, double io_timeout_s, double request_timeout_s)
      : fd_(fd),
        pending_(std::move(pending)),
        io_timeout_ms_(static_cast<int>(io_timeout_s * 1000)),
        read_deadline_(after(request_timeout_s)) {}

  bool is_readable() const override { return offset_ < pending_.size() || wait(POLLIN, true); }
  bool is_writable() const override { return wait(POLLOUT, false); }

  ssize_t read(char* ptr, size_t size) override {
    if (offset_ < pending_.size()) return take(ptr, size);
    for (;;) {
      if (!wait(POLLIN, true)) return -1;
      if (size < kChunk) {
        // httplib reads request lines a byte at a time: refill a buffer instead.
        pending_.resize(kChunk);
        offset_ = 0;
        ssize_t n = ::recv(fd_, pending_.data(), kChunk, 0);
        pending_.resize(n > 0 ? static_cast<size_t>(n) : 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (n <= 0) return n;
        return take(ptr, size);
      }
      ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      return n;
    }
  }

  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      if (!wait(POLLOUT, false)) return -1;
      ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      return n;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address_of(fd_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address_of(fd_, false, ip, port);
  }
  socket_t socket() const override { return fd_; }

  // What was received beyond this request (a pipelined next request).
  std::string leftover() const { return pending_.substr(std::min(offset_, pending_.size())); }

 private:
  static constexpr size_t kChunk = 16 << 10;

  ssize_t take(char* ptr, size_t size) {
    size_t n = std::min(size, pending_.size() - offset_);
    std::memcpy(ptr, pending_.data() + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }

  bool wait(short events, bool reading) const {
    int timeout = io_timeout_ms_;
    if (reading) {
      timeout = std::min(timeout, millis_until(read_deadline_));
      if (timeout == 0 && Clock::now() >= read_deadline_) return false;
    }
    pollfd p{fd_, events, 0};
    for (;;) {
      int rc = ::poll(&p, 1, timeout);
      if (rc < 0 && errno == EINTR) continue;
      return rc > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
    }
  }

  int fd_;
  std::string pending_;
  size_t offset_ = 0;
  int io_timeout_ms_;
  Clock::time_point read_deadline_;
};

// httplib's accept loop hands each new socket to its task queue; this one runs the task
// (HttpFront::process_and_close_socket, which only registers the socket) on the spot.
class InlineQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

const char* reason_of(int status) {
  switch (status) {
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

}  // namespace

struct HttpFront::Core {
  HttpFrontOptions options;
  HttpFront& server;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<size_t> open{0};  // connections not yet closed

  std::mutex mutex;
  std::condition_variable work;     // the main workers
  std::condition_variable control_work;  // the control lane's worker
  std::vector<std::unique_ptr<Connection>> incoming;  // for the poller: new or returned
  std::deque<std::unique_ptr<Connection>> requests;   // complete heads, for the workers
  std::deque<std::unique_ptr<Connection>> control;    // health and metrics, for their lane
  bool stopping = false;

  std::unordered_map<int, std::unique_ptr<Connection>> waiting;  // poller thread only
  std::thread poller;
  std::vector<std::thread> workers;
  bool started = false;
  bool shut = false;

  Core(HttpFrontOptions o, HttpFront& s) : options(std::move(o)), server(s) {}

  // ---- closing ----------------------------------------------------------------------------

  void close_now(int fd) {
    ::close(fd);
    --open;
  }

  // Writes a small JSON answer without blocking (best effort) and lingers before closing.
  void refuse(std::unique_ptr<Connection> conn, int status, const std::string& message) {
    std::string body = "{\"error\":\"" + message + "\"}";
    std::string answer = "HTTP/1.1 " + std::to_string(status) + " " + reason_of(status) +
                         "\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n" +
                         (status == 503 ? "Retry-After: 1\r\n" : "") + "\r\n" + body;
    (void)::send(conn->fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (options.on_front_answer) options.on_front_answer(status);
    linger(std::move(conn));
  }

  // Half-closes and lets the poller discard what the client still sends, so it reads the
  // answer rather than a reset (closing with unread input sends RST).
  void linger(std::unique_ptr<Connection> conn) {
    ::shutdown(conn->fd, SHUT_WR);
    conn->phase = Connection::Phase::linger;
    conn->buffer.clear();
    conn->deadline = after(options.linger_s);
    give_to_poller(std::move(conn));
  }

  // ---- the poller ---------------------------------------------------------------------------

  void give_to_poller(std::unique_ptr<Connection> conn) {
    {
      std::lock_guard lock(mutex);
      if (!stopping) {
        incoming.push_back(std::move(conn));
        conn = nullptr;
      }
    }
    if (conn) {
      close_now(conn->fd);
      return;
    }
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  void watch(std::unique_ptr<Connection> conn) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.fd = conn->fd;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conn->fd, &event) != 0) {
      close_now(conn->fd);
      return;
    }
    const int fd = conn->fd;
    const bool pending = conn->phase != Connection::Phase::linger && !conn->buffer.empty();
    waiting[fd] = std::move(conn);
    if (pending) check_head(fd);  // a pipelined request may be complete already
  }

  std::unique_ptr<Connection> unwatch(int fd) {
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    auto it = waiting.find(fd);
    auto conn = std::move(it->second);
    waiting.erase(it);
    return conn;
  }

  void on_readable(int fd) {
    Connection& conn = *waiting.at(fd);
    char buffer[16 << 10];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
      unwatch(fd);
      close_now(fd);
      return;
    }
    if (conn.phase == Connection::Phase::linger) {
      conn.discarded += static_cast<size_t>(n);
      if (conn.discarded > (64u << 20)) {
        unwatch(fd);
        close_now(fd);
      }
      return;
    }
    if (conn.phase == Connection::Phase::idle) {
      conn.phase = Connection::Phase::head;
      conn.deadline = after(options.header_timeout_s);
    }
    conn.buffer.append(buffer, static_cast<size_t>(n));
    check_head(fd);
  }

  // Hands the connection to a worker once its request head is complete.
  void check_head(int fd) {
    Connection& conn = *waiting.at(fd);
    conn.phase = Connection::Phase::head;
    size_t from = conn.scanned >= 3 ? conn.scanned - 3 : 0;
    size_t end = conn.buffer.find("\r\n\r\n", from);
    if (end == std::string::npos) {
      conn.scanned = conn.buffer.size();
      if (conn.buffer.size() > options.max_header_bytes) {
        refuse(unwatch(fd), 431, "request head longer than " +
                                     std::to_string(options.max_header_bytes) + " bytes");
      }
      return;
    }
    if (end + 4 > options.max_header_bytes) {
      refuse(unwatch(fd), 431,
             "request head longer than " + std::to_string(options.max_header_bytes) + " bytes");
      return;
    }
    auto conn_ptr = unwatch(fd);
    const std::string& b = conn_ptr->buffer;
    const bool is_control = b.rfind("GET /v2/health/", 0) == 0 ||
                            b.rfind("GET /metrics ", 0) == 0 || b.rfind("GET /metrics?", 0) == 0;
    {
      std::unique_lock lock(mutex);
      auto& queue = is_control ? control : requests;
      const size_t limit = is_control ? 64 : options.max_queued;
      if (queue.size() < limit) {
        queue.push_back(std::move(conn_ptr));
        // A backed-up control lane is helped by a main worker.
        const bool help = is_control && control.size() > 1;
        lock.unlock();
        if (is_control) control_work.notify_one();
        if (!is_control || help) work.notify_one();
        return;
      }
    }
    refuse(std::move(conn_ptr), 503,
           "server busy: " + std::to_string(options.max_queued) +
               " requests wait for a worker already; retry later");
  }

  void expire(Clock::time_point now) {
    std::vector<int> due;
    for (const auto& [fd, conn] : waiting) {
      if (now >= conn->deadline) due.push_back(fd);
    }
    for (int fd : due) {
      auto conn = unwatch(fd);
      if (conn->phase == Connection::Phase::head) {
        refuse(std::move(conn), 408,
               "request head not complete within " +
                   std::to_string(static_cast<int>(options.header_timeout_s)) + " s");
      } else {
        close_now(conn->fd);
      }
    }
  }

  void poll_loop() {
    std::vector<epoll_event> events(128);
    auto next_expiry = Clock::now();
    for (;;) {
      int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 100);
      std::vector<std::unique_ptr<Connection>> arrived;
      bool stop = false;
      {
        std::lock_guard lock(mutex);
        arrived.swap(incoming);
        stop = stopping;
      }
      if (stop) {
        for (auto& conn : arrived) close_now(conn->fd);
        for (auto& [fd, conn] : waiting) close_now(fd);
        waiting.clear();
        return;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd) {
          uint64_t count;
          (void)!::read(wake_fd, &count, sizeof count);
          continue;
        }
        if (waiting.count(fd)) on_readable(fd);
      }
      // Refusals made while reading may have queued connections to linger.
      {
        std::lock_guard lock(mutex);
        for (auto& conn : incoming) arrived.push_back(std::move(conn));
        incoming.clear();
      }
      for (auto& conn : arrived) watch(std::move(conn));
      const auto now = Clock::now();
      if (now >= next_expiry) {
        expire(now);
        next_expiry = now + std::chrono::milliseconds(100);
      }
    }
  }

  // ---- the workers --------------------------------------------------------------------------

  void work_loop(bool control_lane) {
    for (;;) {
      std::unique_ptr<Connection> conn;
      {
        std::unique_lock lock(mutex);
        auto& queue = control_lane ? control : requests;
        // The main workers help the control lane when it is backed up.
        (control_lane ? control_work : work).wait(lock, [&] {
          return stopping || !queue.empty() || (!control_lane && control.size() > 1);
        });
        if (!queue.empty()) {
          conn = std::move(queue.front());
          queue.pop_front();
        } else if (!control_lane && !control.empty()) {
          conn = std::move(control.front());
          control.pop_front();
        } else if (stopping) {
          return;
        } else {
          continue;
        }
      }
      serve(std::move(conn));
    }
  }

  void serve(std::unique_ptr<Connection> conn) {
    bool closing;
    {
      std::lock_guard lock(mutex);
      closing = stopping;
    }
    ConnectionStream stream(conn->fd, std::move(conn->buffer), options.io_timeout_s,
                            options.request_timeout_s);
    t_close_after_answer = false;
    bool connection_closed = false;
    bool answered = false;
    try {
      answered = server.process_request(stream, closing, connection_closed, nullptr);
    } catch (...) {  // httplib catches handler exceptions; anything else ends the connection
      answered = false;
    }
    if (!answered || connection_closed || closing) {
      close_now(conn->fd);
      return;
    }
    if (t_close_after_answer) {
      linger(std::move(conn));
      return;
    }
    conn->buffer = stream.leftover();
    conn->scanned = 0;
    conn->discarded = 0;
    if (conn->buffer.empty()) {
      conn->phase = Connection::Phase::idle;
      conn->deadline = after(options.idle_timeout_s);
    } else {
      conn->phase = Connection::Phase::head;
      conn->deadline = after(options.header_timeout_s);
    }
    give_to_poller(std::move(conn));
  }
};

HttpFront::HttpFront(HttpFrontOptions options)
    : core_(std::make_unique<Core>(std::move(options), *this)) {
  if (core_->options.workers < 1) {
    fail_expected("HTTP workers", "at least 1", std::to_string(core_->options.workers));
  }
  new_task_queue = [] { return new InlineQueue; };
}

HttpFront::~HttpFront() { shutdown(); }

void HttpFront::start() {
  auto& c = *core_;
  if (c.started) return;
  // httplib listens with a backlog of 5: a burst of connections would wait for SYN retries.
  ::listen(svr_sock_, 1024);
  c.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  c.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (c.epoll_fd < 0 || c.wake_fd < 0) throw Error("HTTP front: cannot create epoll/eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = c.wake_fd;
  ::epoll_ctl(c.epoll_fd, EPOLL_CTL_ADD, c.wake_fd, &event);
  c.started = true;
  c.poller = std::thread([&c] { c.poll_loop(); });
  for (int i = 0; i < c.options.workers; ++i) c.workers.emplace_back([&c] { c.work_loop(false); });
  c.workers.emplace_back([&c] { c.work_loop(true); });
}

void HttpFront::shutdown() {
  auto& c = *core_;
  if (!c.started || c.shut) return;
  c.shut = true;
  {
    std::lock_guard lock(c.mutex);
    c.stopping = true;
  }
  c.work.notify_all();
  c.control_work.notify_all();
  uint64_t one = 1;
  (void)!::write(c.wake_fd, &one, sizeof one);
  // Workers answer what is queued (with Connection: close), then leave.
  for (auto& t : c.workers) t.join();
  c.poller.join();
  for (auto* queue : {&c.requests, &c.control}) {
    for (auto& conn : *queue) c.close_now(conn->fd);
    queue->clear();
  }
  ::close(c.epoll_fd);
  ::close(c.wake_fd);
}

void HttpFront::close_after_answer(httplib::Response& res) {
  t_close_after_answer = true;
  res.set_header("Connection", "close");
}

bool HttpFront::process_and_close_socket(socket_t sock) {
  auto& c = *core_;
  set_nonblocking(sock);
  int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ++c.open;
  auto conn = std::make_unique<Connection>();
  conn->fd = sock;
  conn->phase = Connection::Phase::idle;
  conn->deadline = after(c.options.header_timeout_s);
  // httplib's parser may use select(), which cannot watch descriptors beyond FD_SETSIZE.
  if (c.open.load() > c.options.max_connections || sock >= FD_SETSIZE) {
    c.refuse(std::move(conn), 503,
             "too many connections (" + std::to_string(c.options.max_connections) +
                 " open); retry later");
    return true;
  }
  c.give_to_poller(std::move(conn));
  return true;
}

}  // namespace edgefm::cloud
