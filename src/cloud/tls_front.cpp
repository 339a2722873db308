#include "cloud/tls_front.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cerrno>
#include <list>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace edgefm::cloud {
namespace {

std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

void set_timeout(int fd, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int connect_backend(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int yes = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  return fd;
}

// Relays one connection until either side closes or the front stops.
void relay(SSL* ssl, int client_fd, int backend_fd, const std::atomic<bool>& stopping) {
  char buffer[16384];
  pollfd fds[2] = {{client_fd, POLLIN, 0}, {backend_fd, POLLIN, 0}};
  while (!stopping.load()) {
    // Bytes OpenSSL already decrypted are not visible to poll.
    if (SSL_pending(ssl) == 0) {
      const int ready = ::poll(fds, 2, 200);
      if (ready < 0 && errno != EINTR) return;
      if (ready <= 0) continue;
    }
    if (SSL_pending(ssl) > 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      const int n = SSL_read(ssl, buffer, sizeof buffer);
      if (n <= 0) {
        const int error = SSL_get_error(ssl, n);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) continue;
        return;
      }
      for (int sent = 0; sent < n;) {
        const ssize_t w = ::send(backend_fd, buffer + sent, static_cast<size_t>(n - sent), MSG_NOSIGNAL);
        if (w <= 0) return;
        sent += static_cast<int>(w);
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(backend_fd, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      if (SSL_write(ssl, buffer, static_cast<int>(n)) <= 0) return;
    }
    fds[0].revents = fds[1].revents = 0;
  }
}

}  // namespace

struct TlsFront::Impl {
  TlsFrontOptions options;
  SSL_CTX* context = nullptr;
  int listen_fd = -1;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::thread acceptor;
  std::mutex connections_mutex;
  struct Connection {
    std::thread thread;
    int client_fd = -1;
    std::atomic<bool> done{false};
  };
  std::list<Connection> connections;
  std::once_flag stop_once;

  void serve_connection(Connection& c) {
    SSL* ssl = SSL_new(context);
    int backend_fd = -1;
    set_timeout(c.client_fd, options.handshake_timeout_s);
    if (ssl != nullptr && SSL_set_fd(ssl, c.client_fd) == 1 && SSL_accept(ssl) == 1) {
      set_timeout(c.client_fd, 0);  // the relay polls; the backend enforces its own timeouts
      backend_fd = connect_backend(options.backend_port);
      if (backend_fd >= 0) relay(ssl, c.client_fd, backend_fd, stopping);
      SSL_shutdown(ssl);
    }
    ERR_clear_error();
    if (ssl != nullptr) SSL_free(ssl);
    if (backend_fd >= 0) ::close(backend_fd);
    ::shutdown(c.client_fd, SHUT_RDWR);
    c.done = true;
  }

  // Joins finished connections; the caller holds connections_mutex.
  void reap_locked() {
    for (auto it = connections.begin(); it != connections.end();) {
      if (it->done.load()) {
        it->thread.join();
        ::close(it->client_fd);
        it = connections.erase(it);
      } else {
        ++it;
      }
    }
  }

  void accept_loop() {
    pollfd fd{listen_fd, POLLIN, 0};
    while (!stopping.load()) {
      const int ready = ::poll(&fd, 1, 200);
      {
        std::lock_guard<std::mutex> lock(connections_mutex);
        reap_locked();
      }
      if (ready <= 0) continue;
      const int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      int yes = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
      std::lock_guard<std::mutex> lock(connections_mutex);
      if (connections.size() >= options.max_connections) {
        ::close(client);
        continue;
      }
      Connection& c = connections.emplace_back();
      c.client_fd = client;
      c.thread = std::thread([this, &c] { serve_connection(c); });
    }
  }
};

TlsFront::TlsFront(TlsFrontOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  s.context = SSL_CTX_new(TLS_server_method());
  if (s.context == nullptr) throw Error("TLS: " + openssl_reason());
  SSL_CTX_set_min_proto_version(s.context, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(s.context, s.options.cert_file.c_str()) != 1) {
    const std::string why = openssl_reason();
    SSL_CTX_free(s.context);
    throw Error("TLS certificate " + s.options.cert_file + ": expected a PEM certificate (" + why + ")");
  }
  if (SSL_CTX_use_PrivateKey_file(s.context, s.options.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(s.context) != 1) {
    const std::string why = openssl_reason();
    SSL_CTX_free(s.context);
    throw Error("TLS key " + s.options.key_file + ": expected the PEM private key of " +
                s.options.cert_file + " (" + why + ")");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(s.options.port);
  if (::getaddrinfo(s.options.host.c_str(), port_text.c_str(), &hints, &found) != 0 || found == nullptr) {
    SSL_CTX_free(s.context);
    throw Error("TLS: cannot resolve '" + s.options.host + "'");
  }
  s.listen_fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  int yes = 1;
  ::setsockopt(s.listen_fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  const bool bound = s.listen_fd >= 0 && ::bind(s.listen_fd, found->ai_addr, found->ai_addrlen) == 0 &&
                     ::listen(s.listen_fd, 1024) == 0;
  ::freeaddrinfo(found);
  if (!bound) {
    if (s.listen_fd >= 0) ::close(s.listen_fd);
    SSL_CTX_free(s.context);
    throw Error("TLS: cannot bind " + s.options.host + ":" + port_text +
                " (in use, or not an address of this machine)");
  }
  sockaddr_storage addr{};
  socklen_t length = sizeof addr;
  ::getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&addr), &length);
  s.port = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  s.acceptor = std::thread([impl = impl_.get()] { impl->accept_loop(); });
}

TlsFront::~TlsFront() { stop(); }

int TlsFront::port() const { return impl_->port; }

void TlsFront::stop() {
  std::call_once(impl_->stop_once, [this] {
    Impl& s = *impl_;
    s.stopping = true;
    if (s.acceptor.joinable()) s.acceptor.join();
    {
      std::lock_guard<std::mutex> lock(s.connections_mutex);
      for (auto& c : s.connections) ::shutdown(c.client_fd, SHUT_RDWR);
      for (auto& c : s.connections) {
        c.thread.join();
        ::close(c.client_fd);
      }
      s.connections.clear();
    }
    ::close(s.listen_fd);
    SSL_CTX_free(s.context);
  });
}

}  // namespace edgefm::cloud
