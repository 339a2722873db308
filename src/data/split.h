#pragma once
// Which classes the edge deployment knows at first ("seen"), which appear later ("unseen"),
// and in what order the stream presents the samples. Configuration, not code:
// configs/split-default.json, configs/split-even.json.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace edgefm::data {

struct Split {
  std::string name = "default";
  std::vector<int> seen = {0, 1, 2, 3, 4, 5};
  uint64_t seed = 7;  // stream shuffle
  // Stream order: "shuffled" (all classes mixed) or "shift" (seen classes only for the first
  // `shift_at` samples, then all classes).
  std::string order = "shuffled";
  size_t shift_at = 0;

  bool is_seen(int label) const;
  std::vector<int> unseen(int num_classes) const;
};

Split default_split();                  // seen {0..5}
Split even_split();                     // seen {0,2,4,6,8}
Split load_split(const std::filesystem::path& path);  // throws Error on bad content
// Validates class indices against the data set's class count.
void check_split(const Split& split, int num_classes);

// Indices of the samples whose label is seen (or unseen).
std::vector<size_t> seen_indices(const Dataset& dataset, const Split& split);
// The stream order of the data set's samples under the split.
std::vector<size_t> stream_order(const Dataset& dataset, const Split& split);

}  // namespace edgefm::data
