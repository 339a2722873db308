#pragma once
// Signed artifacts. A published artifact's metadata holds the SHA-256 of
// its content; that proves a download matches the service's file, not that the service made
// it. With a key shared by the service and the edge (CustomizationOptions::artifact_key,
// ClientOptions::artifact_key), the metadata also carries
//   "signature": {"alg": "HMAC-SHA256", "value": "<hex>"}
// over artifact_signed_text(metadata): what the artifact is (device, version, arch, size)
// and its content (sha256). The edge verifies it before it writes, loads or installs the
// file, so an artifact changed in the store (its SHA-256 updated to match), one published
// for another device or version, or an unsigned one is refused and the old model serves on.
#include <string>

#include "common/json_io.h"

namespace edgefm::cloud {

inline constexpr const char* kArtifactSignatureAlg = "HMAC-SHA256";

// "edgefm-artifact-v1\ndevice=...\nversion=...\narch=...\nsize=...\nsha256=...\n"; throws
// Error when a field is missing or of the wrong type.
std::string artifact_signed_text(const json& metadata);

// {"alg": "HMAC-SHA256", "value": hex HMAC-SHA256 of artifact_signed_text under `key`}.
json artifact_signature(const json& metadata, const std::string& key);

// Throws Error saying what is wrong: no signature, another algorithm, or a value that does
// not verify under `key`. The comparison takes the same time wherever the values differ.
void verify_artifact_signature(const json& metadata, const std::string& key);

}  // namespace edgefm::cloud
