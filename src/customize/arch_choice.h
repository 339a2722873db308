#pragma once
// Architecture choice by an accuracy-resource lookup table (EdgeFM's "model pool"
// step). Each row is one edge architecture: its accuracy (measured by the cloud on held-out
// FM-labelled data) and its cost on the device (batch-1 latency and peak memory, measured on
// the device by `edgefm profile`). The choice is the most accurate architecture within the
// device's latency and memory budget. Torch-free.
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json_io.h"

namespace edgefm::customize {

// One architecture as measured on the device.
struct ArchCost {
  std::string arch;
  double latency_ms = 0;      // batch-1 forward, median
  double peak_memory_mb = 0;  // peak resident memory the model adds (see docs/customization.md)
};

// What `edgefm profile` writes and a job request carries:
// {"format": "edgefm-device-profile", "version": 1, "device": "...",
//  "architectures": [{"arch": "tiny-cnn", "latency_ms": 0.21, "peak_memory_mb": 3.1, ...}]}
// Extra fields (p99, parameters, method, host) are kept in `extra` and ignored by the choice.
struct DeviceProfile {
  std::string device;
  std::vector<ArchCost> architectures;
  json extra = json::object();

  const ArchCost* find(const std::string& arch) const;
  json to_json() const;
  // Throws Error naming the field when something is missing or not a positive number, or
  // when an architecture is listed twice.
  static DeviceProfile from_json(const json& j);
};

inline constexpr const char* kDeviceProfileFormat = "edgefm-device-profile";
inline constexpr int kDeviceProfileVersion = 1;

// Limits on the device; an absent one is unlimited.
struct ResourceBudget {
  double latency_ms = std::numeric_limits<double>::infinity();
  double memory_mb = std::numeric_limits<double>::infinity();

  // {"latency_ms": 2.0, "memory_mb": 64}; fields optional, each > 0. Throws Error.
  static ResourceBudget from_json(const json& j);
  json to_json() const;  // absent limits left out
  std::string to_string() const;  // "latency <= 2 ms, memory <= 64 MB"
};

// A row of the lookup table.
struct LookupRow {
  std::string arch;
  std::optional<double> accuracy;  // none: not measured (e.g. outside the budget)
  double latency_ms = 0;
  double peak_memory_mb = 0;
  bool within_latency = false;
  bool within_memory = false;
  bool fits() const { return within_latency && within_memory; }
};

struct ArchChoice {
  std::string arch;
  double accuracy = 0;
  std::vector<LookupRow> table;  // every profiled architecture, in profile order
  json to_json() const;          // {"arch", "accuracy", "table": [{...}]}
};

// The profiled architectures that fit the budget, in profile order (which ones the cloud
// needs to measure).
std::vector<std::string> architectures_within(const DeviceProfile& profile,
                                              const ResourceBudget& budget);

// The most accurate architecture that fits; ties go to the lower latency, then the lower
// memory. Architectures without an accuracy are not chosen. Throws Error listing the table
// when none fits (or none that fits has an accuracy).
ArchChoice choose_architecture(const std::map<std::string, double>& accuracy,
                               const DeviceProfile& profile, const ResourceBudget& budget);

}  // namespace edgefm::customize
