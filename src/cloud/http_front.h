#pragma once
// The cloud server's connection handling, under cpp-httplib's request parsing and routing.
//
// cpp-httplib 0.11 gives every connection a worker thread for its whole life: a client that
// sends its headers a byte every 2 s, or an idle keep-alive connection, holds a worker, and
// when all are held nobody else (health checks included) is answered. HttpFront keeps
// connections in one epoll thread until a complete request head has arrived, and only then
// hands the connection to a worker for that one request; after the answer the connection
// goes back to waiting. Beyond that it:
//   - gives a request head `header_timeout_s` to arrive (408), `max_header_bytes` (431);
//   - closes idle keep-alive connections after `idle_timeout_s`;
//   - bounds each read and write of a request (`io_timeout_s`) and the whole request body
//     (`request_timeout_s`);
//   - refuses connections beyond `max_connections`, and requests beyond `max_queued`
//     waiting for a worker, with 503 and Retry-After instead of letting them stall;
//   - serves health checks and /metrics on a lane of their own, so they answer under load;
//   - closes a connection whose request body was not read (refused early) with a lingering
//     close, so the client still reads the answer instead of a reset.
#include <cstddef>
#include <functional>
#include <memory>

#include <httplib.h>

namespace edgefm::cloud {

struct HttpFrontOptions {
  int workers = 64;                  // threads handling requests
  size_t max_queued = 256;           // complete requests waiting for a worker; more: 503
  size_t max_connections = 1000;     // open connections; more: 503 and closed
  size_t max_header_bytes = 64 << 10;  // request line + headers; more: 431
  double header_timeout_s = 10;      // from the first byte of a request to its blank line: 408
  double idle_timeout_s = 5;         // a keep-alive connection waiting for its next request
  double io_timeout_s = 10;          // each read or write while a worker serves a request
  double request_timeout_s = 60;     // reading one request's body, in all
  double linger_s = 2;               // draining unread input before closing
  // Called (from any thread) for each answer the front writes itself (408, 431, 503), which
  // httplib's logger does not see.
  std::function<void(int status)> on_front_answer;
};

class HttpFront : public httplib::Server {
 public:
  explicit HttpFront(HttpFrontOptions options);
  ~HttpFront() override;

  // After bind_to_port / bind_to_any_port: raises the listen backlog (httplib's is 5) and
  // starts the poller and worker threads.
  void start();
  // After httplib::Server::stop() returned from listen: finishes requests in flight, closes
  // every connection and joins the threads. Idempotent.
  void shutdown();

  // From a handler: close this connection after the answer (its body was not read, or not
  // completely). The answer carries "Connection: close".
  static void close_after_answer(httplib::Response& res);

 private:
  bool process_and_close_socket(socket_t sock) override;

  struct Core;
  std::unique_ptr<Core> core_;
};

}  // namespace edgefm::cloud
