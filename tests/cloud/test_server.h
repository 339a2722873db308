#pragma once
// A cloud server on an ephemeral 127.0.0.1 port serving the linear stand-in FM, and the
// helpers the protocol tests share.
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

#include "cloud/client.h"
#include "cloud/linear_model.h"
#include "cloud/server.h"

namespace edgefm::cloud::testing {

inline const std::vector<std::string> kClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                  "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};
inline const char* kToken = "s3cret";

inline LinearModelOptions model_options(int64_t call_cost_us = 0) {
  LinearModelOptions o = linear_model_default_options();
  o.embedding_dim = 16;
  o.call_cost_us = call_cost_us;
  return o;
}

inline ServerOptions test_options() {
  ServerOptions o = server_default_options();
  o.token = kToken;
  o.max_request_bytes = 64 * 1024;
  o.max_batch = 8;
  o.max_queue_delay_us = 1000;
  o.threads = 24;
  o.keep_alive_timeout_s = 1;
  return o;
}

struct TestServer {
  models::FoundationModel fm;
  std::unique_ptr<CloudServer> server;

  explicit TestServer(ServerOptions options = test_options(), int64_t call_cost_us = 0)
      : fm(make_linear_foundation_model(model_options(call_cost_us), kClasses)),
        server(std::make_unique<CloudServer>(fm, options)) {}

  std::string url() const { return server->url(); }

  ClientOptions client_options(bool binary = true) const {
    ClientOptions o = client_default_options();
    o.url = url();
    o.token = kToken;
    o.binary = binary;
    o.read_timeout_s = 20;
    return o;
  }

  // A raw HTTP client for requests the OIP client would never send.
  std::unique_ptr<httplib::Client> raw(bool with_token = true) const {
    auto client = std::make_unique<httplib::Client>(url());
    client->set_read_timeout(20, 0);
    if (with_token) client->set_bearer_token_auth(kToken);
    return client;
  }
};

// n deterministic images in [0, 1] of the stand-in's 1 x 28 x 28 shape, multiples of 1/255.
inline std::vector<uint8_t> test_pixels(int64_t n, uint32_t seed = 7) {
  std::vector<uint8_t> pixels(static_cast<size_t>(n * 784));
  uint32_t state = seed;
  for (auto& p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  return pixels;
}

inline std::vector<float> to_floats(const std::vector<uint8_t>& pixels) {
  std::vector<float> out(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
  return out;
}

}  // namespace edgefm::cloud::testing
