#pragma once
// The edge's client of the cloud service (or of any Open Inference Protocol server that
// serves the same tensors, e.g. Triton or KServe): one keep-alive connection, connect and
// read timeouts, bounded retries with exponential backoff on connection failures (never on
// an HTTP error answer), binary tensor data both ways by default.
//
// One request at a time per client (calls from several threads are serialised); use one
// client per thread for concurrent requests.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cloud/oip.h"
#include "common/error.h"
#include "models/encoder.h"

namespace edgefm::cloud {

// A failed call: `status` is the HTTP status of the answer (0 when no answer came: the
// connection failed or timed out); `server_message` is the server's {"error": ...} text.
class RequestError : public Error {
 public:
  RequestError(int status, std::string server_message, const std::string& what)
      : Error(what), status_(status), server_message_(std::move(server_message)) {}
  int status() const { return status_; }
  const std::string& server_message() const { return server_message_; }
  bool no_answer() const { return status_ == 0; }
  bool refused() const { return status_ == 401 || status_ == 403; }  // the credentials

 private:
  int status_;
  std::string server_message_;
};

enum class ImageUpload {
  uint8,  // UINT8, 1 byte per pixel: round(x * 255); exact for 8-bit sources
  fp32,   // FP32, 4 bytes per pixel, as given
};

struct ClientOptions {
  std::string url = "http://127.0.0.1:8000";  // scheme://host:port of the server
  // https:// URLs: the server's certificate is verified against this PEM file of trusted
  // certificates (empty: the system's).
  std::string ca_cert_file;
  std::string token;                          // sent as "Authorization: Bearer <token>"
  double connect_timeout_s = 2.0;
  double read_timeout_s = 10.0;               // a call that waits longer fails, no retry
  double write_timeout_s = 10.0;
  int max_retries = 2;                        // extra attempts after a connection failure
  double retry_backoff_s = 0.05;              // first retry waits this, then doubles
  std::string image_model = "fm";
  std::string text_model = "text";
  ImageUpload upload = ImageUpload::uint8;
  bool binary = true;                         // binary tensor data; false: JSON arrays
  // Non-empty: CustomizationClient::download_artifact accepts only artifacts whose metadata
  // carries a valid HMAC-SHA256 signature under this key (cloud/artifact_signature.h).
  std::string artifact_key;
};
ClientOptions client_default_options();

// Timings the server reported in the response parameters (-1 when absent).
struct ServerTimings {
  int64_t queue_us = -1;    // wait in the dynamic batcher
  int64_t compute_us = -1;  // the model call(s) of its batch
  int64_t server_us = -1;   // request received to response encoded
  int64_t batch_rows = -1;  // rows in the batch it ran in
};

struct CallStats {
  int64_t bytes_sent = 0;      // request body bytes (HTTP headers, ~200 B, not counted)
  int64_t bytes_received = 0;  // response body bytes
  double seconds = 0;          // wall time of the call, retries included
  int attempts = 0;
};

struct ImageInference {
  int64_t count = 0;
  int dim = 0;
  std::vector<float> embeddings;  // count x dim, L2-normalised
  std::vector<int64_t> class_index;
  std::vector<std::string> class_name;
  std::vector<float> margin;  // top-1 minus top-2 cosine to the server's pool
  ServerTimings server;
  CallStats call;
};

struct TextEmbeddings {
  int64_t count = 0;
  int dim = 0;
  std::vector<float> values;  // count x dim
};

class OipClient {
 public:
  explicit OipClient(ClientOptions options);
  ~OipClient();
  OipClient(const OipClient&) = delete;
  OipClient& operator=(const OipClient&) = delete;

  const ClientOptions& options() const;

  // Health, never throwing: false on any failure.
  bool live();
  bool ready();  // server ready and the image model ready
  // Polls ready() until it holds; throws RequestError after `timeout_s`.
  void wait_until_ready(double timeout_s);

  // n images of `shape`, floats in [0, 1], n x C x H x W.
  ImageInference infer_images(const float* images, int64_t n, const models::ImageShape& shape);
  // n images of 8-bit pixels, n x C x H x W (uploaded as UINT8 whatever options().upload).
  ImageInference infer_images_u8(const uint8_t* pixels, int64_t n,
                                 const models::ImageShape& shape);

  // Embeddings of class names or prompts from the text model; an unknown one is a
  // RequestError with status 400 and the text encoder's message.
  TextEmbeddings embed_text(const std::vector<std::string>& prompts, CallStats* call = nullptr);
  // The class names of the server's pool.
  std::vector<std::string> class_names();

  json server_metadata();
  json model_metadata(const std::string& model);

  // Any inference on any model; `call` receives byte counts and timing.
  InferResponse infer(const std::string& model, const InferRequest& request,
                      CallStats* call = nullptr);

  // Any HTTP call (GET, POST or DELETE) on this client's connection with its auth, timeouts
  // and retries, for endpoints beyond the protocol (e.g. the customization service). Returns
  // the answer whatever its status; throws RequestError(0, ...) when none came.
  struct RawAnswer {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // names lower-cased
    CallStats call;
  };
  RawAnswer call_raw(const std::string& method, const std::string& path,
                     const std::string& body = "", const std::string& content_type = "",
                     const std::vector<std::pair<std::string, std::string>>& headers = {});

 private:
  ImageInference infer_image_tensor(Tensor images, int64_t n);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::cloud
