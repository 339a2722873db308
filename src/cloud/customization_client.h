#pragma once
// The edge's client of the customization service (docs/customization.md): upload samples,
// start and follow jobs, fetch artifacts with their checksum verified. Same connection
// handling as OipClient (keep-alive, timeouts, bounded retries on connection failures only);
// failures are RequestError (status 0 when no answer came). Uploads are idempotent (the
// service deduplicates by content hash), so a retry after a lost answer is safe.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/client.h"
#include "common/json_io.h"
#include "models/encoder.h"

namespace edgefm::cloud {

struct UploadAck {
  std::vector<std::string> acknowledged;  // SHA-256 of each uploaded sample, in order
  size_t added = 0;
  size_t duplicates = 0;
  size_t stored = 0;  // the device's samples on the service after this upload
  CallStats call;
};

class CustomizationClient {
 public:
  explicit CustomizationClient(ClientOptions options);  // url, token, timeouts, retries
  ~CustomizationClient();
  CustomizationClient(const CustomizationClient&) = delete;
  CustomizationClient& operator=(const CustomizationClient&) = delete;

  // Each sample is one uint8 image of `shape` (shape.numel() bytes); `metadata` is empty or
  // one JSON object per sample. Sent with binary tensor data.
  UploadAck upload_samples(const std::string& device, const std::vector<std::string_view>& samples,
                           const models::ImageShape& shape,
                           const std::vector<json>& metadata = {});

  json device(const std::string& device);  // {"device", "samples", "jobs", "latest_version"}
  // Queues a job (answer 202 with the job record).
  json submit_job(const std::string& device, const json& request);
  json job(const std::string& id);
  json cancel_job(const std::string& id);
  // Polls the job until it is done, failed or cancelled; returns its last record. Throws
  // RequestError(0, ...) after `timeout_s`.
  json wait_for_job(const std::string& id, double timeout_s, double poll_s = 0.1);

  std::optional<json> latest_artifact(const std::string& device);  // nullopt: none yet
  json artifact_metadata(const std::string& device, int version);
  // Downloads a version, checks its SHA-256 against the service's metadata and writes it
  // atomically to `path`; throws Error (and writes nothing) on a mismatch. With
  // ClientOptions::artifact_key, the metadata's signature is verified first (unsigned or
  // wrongly signed artifacts throw Error). Returns the metadata.
  json download_artifact(const std::string& device, int version, const std::filesystem::path& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::cloud
