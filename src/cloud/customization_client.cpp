#include "cloud/customization_client.h"

#include <chrono>
#include <thread>

#include "cloud/artifact_signature.h"
#include "cloud/oip.h"
#include "common/checksum.h"

namespace edgefm::cloud {

namespace {

const std::string kBase = "/v2/customization";

// A server's answer parsed with the depth cap; discarded (is_discarded()) when malformed.
json parse_answer(const std::string& body) {
  try {
    return parse_untrusted_json(body);
  } catch (const JsonInputError&) {
    return json(json::value_t::discarded);
  }
}

std::string message_of(const std::string& body) {
  json j = parse_answer(body);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"];
  return body.empty() ? "(empty body)" : body.substr(0, 500);
}

}  // namespace

struct CustomizationClient::Impl {
  OipClient http;
  explicit Impl(ClientOptions options) : http(std::move(options)) {}

  OipClient::RawAnswer expect(const std::string& method, const std::string& path,
                              std::initializer_list<int> ok, const std::string& body = "",
                              const std::string& content_type = "",
                              const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    auto answer = http.call_raw(method, path, body, content_type, headers);
    for (int status : ok) {
      if (answer.status == status) return answer;
    }
    const std::string message = message_of(answer.body);
    throw RequestError(answer.status, message,
                       method + " " + http.options().url + path + ": HTTP " +
                           std::to_string(answer.status) + ": " + message);
  }

  json expect_json(const std::string& method, const std::string& path,
                   std::initializer_list<int> ok, const std::string& body = "") {
    auto answer = expect(method, path, ok, body, body.empty() ? "" : "application/json");
    json j = parse_answer(answer.body);
    if (j.is_discarded()) {
      throw ProtocolError(method + " " + path + ": expected a JSON answer, got '" +
                          answer.body.substr(0, 200) + "'");
    }
    return j;
  }
};

CustomizationClient::CustomizationClient(ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
CustomizationClient::~CustomizationClient() = default;

UploadAck CustomizationClient::upload_samples(const std::string& device,
                                              const std::vector<std::string_view>& samples,
                                              const models::ImageShape& shape,
                                              const std::vector<json>& metadata) {
  const auto bytes = static_cast<size_t>(shape.numel());
  if (samples.empty()) throw Error("sample upload: expected at least one sample, got none");
  if (!metadata.empty() && metadata.size() != samples.size()) {
    fail_expected("sample upload metadata", std::to_string(samples.size()) + " entries",
                  std::to_string(metadata.size()));
  }
  std::vector<uint8_t> pixels;
  pixels.reserve(samples.size() * bytes);
  for (size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].size() != bytes) {
      fail_expected("sample " + std::to_string(i) + " of the upload",
                    std::to_string(bytes) + " bytes (one uint8 image)",
                    std::to_string(samples[i].size()));
    }
    pixels.insert(pixels.end(), samples[i].begin(), samples[i].end());
  }
  const auto n = static_cast<int64_t>(samples.size());
  InferRequest request;
  request.inputs.push_back(Tensor::from_uint8s("images", {n, shape.channels, shape.height, shape.width},
                                               std::move(pixels)));
  request.inputs.back().binary = true;
  if (!metadata.empty()) {
    std::vector<std::string> texts;
    for (const auto& m : metadata) texts.push_back(m.is_null() ? "{}" : m.dump());
    request.inputs.push_back(Tensor::from_strings("metadata", {n}, std::move(texts)));
    request.inputs.back().binary = true;
  }
  EncodedBody encoded = encode_request(request);
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type = "application/json";
  if (encoded.json_size) {
    headers.emplace_back(kHeaderContentLength, std::to_string(*encoded.json_size));
    content_type = "application/octet-stream";
  }
  const std::string path = kBase + "/devices/" + device + "/samples";
  auto answer = impl_->expect("POST", path, {200}, encoded.body, content_type, headers);
  json j = parse_answer(answer.body);
  const std::string context = "POST " + path + " answer";
  UploadAck ack;
  ack.acknowledged = json_field<std::vector<std::string>>(j, "acknowledged", context);
  ack.added = json_field<size_t>(j, "added", context);
  ack.duplicates = json_field<size_t>(j, "duplicates", context);
  ack.stored = json_field<size_t>(j, "samples", context);
  ack.call = answer.call;
  if (ack.acknowledged.size() != samples.size()) {
    fail_expected(context, std::to_string(samples.size()) + " acknowledged hashes",
                  std::to_string(ack.acknowledged.size()));
  }
  return ack;
}

json CustomizationClient::device(const std::string& device) {
  return impl_->expect_json("GET", kBase + "/devices/" + device, {200});
}

json CustomizationClient::submit_job(const std::string& device, const json& request) {
  return impl_->expect_json("POST", kBase + "/devices/" + device + "/jobs", {202}, request.dump());
}

json CustomizationClient::job(const std::string& id) {
  return impl_->expect_json("GET", kBase + "/jobs/" + id, {200});
}

json CustomizationClient::cancel_job(const std::string& id) {
  return impl_->expect_json("DELETE", kBase + "/jobs/" + id, {200});
}

json CustomizationClient::wait_for_job(const std::string& id, double timeout_s, double poll_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    json record = job(id);
    const std::string state = record.value("state", "");
    if (state == "done" || state == "failed" || state == "cancelled") return record;
    if (std::chrono::steady_clock::now() >= deadline) {
      throw RequestError(0, "timeout",
                         "customization job " + id + " still " + state + " after " +
                             std::to_string(timeout_s) + " s (" + record.value("message", "") + ")");
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_s));
  }
}

std::optional<json> CustomizationClient::latest_artifact(const std::string& device) {
  const std::string path = kBase + "/devices/" + device + "/artifacts/latest";
  auto answer = impl_->expect("GET", path, {200, 404});
  if (answer.status == 404) return std::nullopt;
  try {
    return parse_untrusted_json(answer.body);
  } catch (const JsonInputError& e) {
    throw ProtocolError("GET " + path + ": malformed JSON answer: " + e.what());
  }
}

json CustomizationClient::artifact_metadata(const std::string& device, int version) {
  return impl_->expect_json(
      "GET", kBase + "/devices/" + device + "/artifacts/" + std::to_string(version) + "/metadata",
      {200});
}

json CustomizationClient::download_artifact(const std::string& device, int version,
                                            const std::filesystem::path& path) {
  json meta = artifact_metadata(device, version);
  const std::string what = "artifact " + device + " v" + std::to_string(version);
  if (const std::string& key = impl_->http.options().artifact_key; !key.empty()) {
    // Before the download: the signature covers the device, the version and the SHA-256,
    // and the SHA-256 check below ties the bytes to it.
    try {
      verify_artifact_signature(meta, key);
    } catch (const Error& e) {
      throw Error(what + ": " + e.what());
    }
    if (meta.value("device", "") != device || meta.value("version", -1) != version) {
      fail_expected(what, "signed metadata of this device and version",
                    "'" + meta.value("device", "") + "' v" +
                        std::to_string(meta.value("version", -1)));
    }
  }
  const std::string expected = json_field<std::string>(meta, "sha256", "artifact metadata");
  auto answer = impl_->expect(
      "GET", kBase + "/devices/" + device + "/artifacts/" + std::to_string(version), {200});
  const std::string got = sha256_hex(answer.body);
  if (got != expected) {
    fail_expected("artifact " + device + " v" + std::to_string(version) + " checksum",
                  "sha256 " + expected, "sha256 " + got + " of " +
                                            std::to_string(answer.body.size()) + " bytes");
  }
  write_text_file(path, answer.body);
  return meta;
}

}  // namespace edgefm::cloud
