#include "cloud/artifact_signature.h"

#include <cstdint>

#include "common/checksum.h"
#include "common/error.h"

namespace edgefm::cloud {

std::string artifact_signed_text(const json& metadata) {
  const std::string context = "artifact metadata";
  return "edgefm-artifact-v1\ndevice=" + json_field<std::string>(metadata, "device", context) +
         "\nversion=" + std::to_string(json_field<int64_t>(metadata, "version", context)) +
         "\narch=" + json_field<std::string>(metadata, "arch", context) +
         "\nsize=" + std::to_string(json_field<uint64_t>(metadata, "size", context)) +
         "\nsha256=" + json_field<std::string>(metadata, "sha256", context) + "\n";
}

json artifact_signature(const json& metadata, const std::string& key) {
  if (key.empty()) throw Error("artifact signature: the key is empty");
  return {{"alg", kArtifactSignatureAlg},
          {"value", hmac_sha256_hex(key, artifact_signed_text(metadata))}};
}

void verify_artifact_signature(const json& metadata, const std::string& key) {
  if (key.empty()) throw Error("artifact signature: the key is empty");
  if (!metadata.is_object() || !metadata.contains("signature")) {
    throw Error("artifact signature: expected a '" + std::string(kArtifactSignatureAlg) +
                "' signature in the metadata, got none (an unsigned artifact)");
  }
  const json& signature = metadata.at("signature");
  const std::string context = "artifact signature";
  const std::string alg = json_field<std::string>(signature, "alg", context);
  if (alg != kArtifactSignatureAlg) {
    fail_expected(context, std::string("algorithm ") + kArtifactSignatureAlg, "'" + alg + "'");
  }
  const std::string value = json_field<std::string>(signature, "value", context);
  const std::string expected = hmac_sha256_hex(key, artifact_signed_text(metadata));
  if (!constant_time_equal(value, expected)) {
    throw Error("artifact signature: does not verify under this edge's key (the artifact or "
                "its metadata was changed, or it was signed with another key)");
  }
}

}  // namespace edgefm::cloud
