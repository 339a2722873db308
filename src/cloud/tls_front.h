#pragma once
// TLS for the cloud service (`serve --tls-cert/--tls-key`): a terminator in the same process.
// It accepts TLS connections on the public address, completes the handshake (OpenSSL, TLS 1.2
// or newer) and relays the plain bytes both ways to the HTTP server listening on 127.0.0.1,
// so every protection of cloud/http_front.h (timeouts, limits, load shedding) applies
// unchanged. A client speaking plain HTTP to the TLS port fails the handshake and is closed;
// a handshake that does not finish within `handshake_timeout_s` is dropped.
#include <memory>
#include <string>

namespace edgefm::cloud {

struct TlsFrontOptions {
  std::string host = "127.0.0.1";
  int port = 0;                     // 0: an ephemeral port (read it with port())
  int backend_port = 0;             // the plain HTTP server on 127.0.0.1
  std::string cert_file;            // PEM certificate chain
  std::string key_file;             // PEM private key
  double handshake_timeout_s = 10;
  size_t max_connections = 1000;    // more are closed at once
};

class TlsFront {
 public:
  // Loads the certificate and key (Error naming the file and OpenSSL's reason) and starts
  // listening; throws Error when the address cannot be bound.
  explicit TlsFront(TlsFrontOptions options);
  ~TlsFront();  // stop()
  TlsFront(const TlsFront&) = delete;
  TlsFront& operator=(const TlsFront&) = delete;

  int port() const;
  // Closes the listener and every relayed connection; joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::cloud
