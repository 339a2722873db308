#include "data/split.h"

#include <algorithm>
#include <random>

#include "common/error.h"
#include "common/json_io.h"

namespace edgefm::data {

bool Split::is_seen(int label) const {
  return std::find(seen.begin(), seen.end(), label) != seen.end();
}

std::vector<int> Split::unseen(int num_classes) const {
  std::vector<int> out;
  for (int c = 0; c < num_classes; ++c) {
    if (!is_seen(c)) out.push_back(c);
  }
  return out;
}

Split default_split() { return Split{}; }

Split even_split() {
  Split split;
  split.name = "even";
  split.seen = {0, 2, 4, 6, 8};
  return split;
}

Split load_split(const std::filesystem::path& path) {
  auto j = read_json_file(path);
  const std::string where = "split '" + path.string() + "'";
  Split split;
  split.name = j.value("name", path.stem().string());
  split.seen = json_field<std::vector<int>>(j, "seen", where);
  if (j.contains("seed")) split.seed = json_field<uint64_t>(j, "seed", where);
  if (j.contains("order")) split.order = json_field<std::string>(j, "order", where);
  if (j.contains("shift_at")) split.shift_at = json_field<size_t>(j, "shift_at", where);
  if (split.order != "shuffled" && split.order != "shift") {
    fail_expected(where + " field 'order'", "\"shuffled\" or \"shift\"", "\"" + split.order + "\"");
  }
  if (split.seen.empty()) fail_expected(where + " field 'seen'", "at least one class", "none");
  return split;
}

void check_split(const Split& split, int num_classes) {
  for (int c : split.seen) {
    if (c < 0 || c >= num_classes) {
      fail_expected("split '" + split.name + "'",
                    "seen classes in [0, " + std::to_string(num_classes) + ")", std::to_string(c));
    }
  }
  if (static_cast<int>(split.seen.size()) >= num_classes) {
    fail_expected("split '" + split.name + "'", "at least one unseen class",
                  "all " + std::to_string(num_classes) + " classes seen");
  }
}

std::vector<size_t> seen_indices(const Dataset& dataset, const Split& split) {
  std::vector<size_t> out;
  for (size_t i = 0; i < dataset.size(); ++i) {
    if (split.is_seen(dataset.labels[i])) out.push_back(i);
  }
  return out;
}

std::vector<size_t> stream_order(const Dataset& dataset, const Split& split) {
  std::mt19937_64 rng(split.seed);
  std::vector<size_t> all(dataset.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  if (split.order == "shuffled") return all;

  // "shift": the first shift_at samples are seen-class samples, the rest keep the shuffled order.
  std::vector<size_t> head, tail;
  for (size_t i : all) {
    if (head.size() < split.shift_at && split.is_seen(dataset.labels[i])) {
      head.push_back(i);
    } else {
      tail.push_back(i);
    }
  }
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

}  // namespace edgefm::data
