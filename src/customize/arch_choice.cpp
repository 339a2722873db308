#include "customize/arch_choice.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "common/error.h"

namespace edgefm::customize {

namespace {

double positive_number(const json& object, const std::string& name, const std::string& context) {
  if (!object.contains(name)) throw Error(context + ": missing field '" + name + "'");
  const json& v = object.at(name);
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) {
    fail_expected(context + ": field '" + name + "'", "a positive number", v.dump());
  }
  return v.get<double>();
}

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", x);
  return text;
}

}  // namespace

const ArchCost* DeviceProfile::find(const std::string& arch) const {
  for (const auto& a : architectures) {
    if (a.arch == arch) return &a;
  }
  return nullptr;
}

json DeviceProfile::to_json() const {
  json j = extra.is_object() ? extra : json::object();
  j["format"] = kDeviceProfileFormat;
  j["version"] = kDeviceProfileVersion;
  j["device"] = device;
  json rows = json::array();
  for (const auto& a : architectures) {
    json row = {{"arch", a.arch}, {"latency_ms", a.latency_ms}, {"peak_memory_mb", a.peak_memory_mb}};
    rows.push_back(row);
  }
  // Keep the extra per-architecture fields the profile came with.
  if (extra.contains("architectures") && extra["architectures"].is_array()) {
    for (auto& row : rows) {
      for (const auto& old : extra["architectures"]) {
        if (old.is_object() && old.value("arch", "") == row["arch"]) {
          for (auto it = old.begin(); it != old.end(); ++it) {
            if (!row.contains(it.key())) row[it.key()] = it.value();
          }
        }
      }
    }
  }
  j["architectures"] = rows;
  return j;
}

DeviceProfile DeviceProfile::from_json(const json& j) {
  const std::string context = "device profile";
  if (!j.is_object()) fail_expected(context, "a JSON object", j.type_name());
  if (j.contains("format") && j["format"] != kDeviceProfileFormat) {
    fail_expected(context + " format", std::string("'") + kDeviceProfileFormat + "'",
                  j["format"].dump());
  }
  if (j.contains("version") && j["version"] != kDeviceProfileVersion) {
    fail_expected(context + " version", std::to_string(kDeviceProfileVersion), j["version"].dump());
  }
  DeviceProfile profile;
  if (j.contains("device")) profile.device = json_field<std::string>(j, "device", context);
  profile.extra = j;
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty()) {
    fail_expected(context + ": field 'architectures'", "a non-empty array",
                  j.contains("architectures") ? j["architectures"].dump().substr(0, 80) : "nothing");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < j["architectures"].size(); ++i) {
    const json& row = j["architectures"][i];
    const std::string row_context = context + " architectures[" + std::to_string(i) + "]";
    ArchCost cost;
    cost.arch = json_field<std::string>(row, "arch", row_context);
    cost.latency_ms = positive_number(row, "latency_ms", row_context);
    cost.peak_memory_mb = positive_number(row, "peak_memory_mb", row_context);
    if (!seen.insert(cost.arch).second) {
      throw Error(row_context + ": architecture '" + cost.arch + "' is listed twice");
    }
    profile.architectures.push_back(cost);
  }
  return profile;
}

ResourceBudget ResourceBudget::from_json(const json& j) {
  const std::string context = "resource budget";
  if (!j.is_object()) fail_expected(context, "a JSON object", j.type_name());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "latency_ms" && it.key() != "memory_mb") {
      fail_expected(context, "fields 'latency_ms' and/or 'memory_mb'", "'" + it.key() + "'");
    }
  }
  ResourceBudget budget;
  if (j.contains("latency_ms")) budget.latency_ms = positive_number(j, "latency_ms", context);
  if (j.contains("memory_mb")) budget.memory_mb = positive_number(j, "memory_mb", context);
  return budget;
}

json ResourceBudget::to_json() const {
  json j = json::object();
  if (std::isfinite(latency_ms)) j["latency_ms"] = latency_ms;
  if (std::isfinite(memory_mb)) j["memory_mb"] = memory_mb;
  return j;
}

std::string ResourceBudget::to_string() const {
  std::string latency = std::isfinite(latency_ms) ? "latency <= " + number(latency_ms) + " ms"
                                                  : "any latency";
  std::string memory = std::isfinite(memory_mb) ? "memory <= " + number(memory_mb) + " MB"
                                                : "any memory";
  return latency + ", " + memory;
}

json ArchChoice::to_json() const {
  json rows = json::array();
  for (const auto& r : table) {
    rows.push_back({{"arch", r.arch},
                    {"accuracy", r.accuracy ? json(*r.accuracy) : json()},
                    {"latency_ms", r.latency_ms},
                    {"peak_memory_mb", r.peak_memory_mb},
                    {"within_latency", r.within_latency},
                    {"within_memory", r.within_memory},
                    {"chosen", r.arch == arch}});
  }
  return {{"arch", arch}, {"accuracy", accuracy}, {"table", rows}};
}

std::vector<std::string> architectures_within(const DeviceProfile& profile,
                                              const ResourceBudget& budget) {
  std::vector<std::string> out;
  for (const auto& a : profile.architectures) {
    if (a.latency_ms <= budget.latency_ms && a.peak_memory_mb <= budget.memory_mb) {
      out.push_back(a.arch);
    }
  }
  return out;
}

ArchChoice choose_architecture(const std::map<std::string, double>& accuracy,
                               const DeviceProfile& profile, const ResourceBudget& budget) {
  ArchChoice choice;
  const LookupRow* best = nullptr;
  for (const auto& a : profile.architectures) {
    LookupRow row;
    row.arch = a.arch;
    row.latency_ms = a.latency_ms;
    row.peak_memory_mb = a.peak_memory_mb;
    row.within_latency = a.latency_ms <= budget.latency_ms;
    row.within_memory = a.peak_memory_mb <= budget.memory_mb;
    if (auto it = accuracy.find(a.arch); it != accuracy.end()) row.accuracy = it->second;
    choice.table.push_back(row);
  }
  for (const auto& row : choice.table) {
    if (!row.fits() || !row.accuracy) continue;
    if (best == nullptr || *row.accuracy > *best->accuracy ||
        (*row.accuracy == *best->accuracy &&
         (row.latency_ms < best->latency_ms ||
          (row.latency_ms == best->latency_ms && row.peak_memory_mb < best->peak_memory_mb)))) {
      best = &row;
    }
  }
  if (best == nullptr) {
    std::string rows;
    for (const auto& r : choice.table) {
      rows += (rows.empty() ? "" : "; ") + r.arch + " " + number(r.latency_ms) + " ms " +
              number(r.peak_memory_mb) + " MB" +
              (r.accuracy ? " accuracy " + number(*r.accuracy) : " accuracy not measured");
    }
    throw Error("architecture choice: expected an architecture within " + budget.to_string() +
                " on device '" + profile.device + "', got none that fits (" + rows + ")");
  }
  choice.arch = best->arch;
  choice.accuracy = *best->accuracy;
  return choice;
}

}  // namespace edgefm::customize
