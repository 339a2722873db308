#include "data/dataset.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/json_io.h"
#include "common/threads.h"
#include "data/audio.h"
#include "data/idx.h"
#include "data/image.h"

namespace edgefm::data {

namespace fs = std::filesystem;

Dataset Dataset::subset(const std::vector<size_t>& indices) const {
  Dataset out;
  out.name = name;
  out.spec = spec;
  out.class_names = class_names;
  out.samples.reserve(indices.size() * sample_size());
  out.labels.reserve(indices.size());
  for (size_t i : indices) {
    if (i >= size()) {
      fail_expected("subset of '" + name + "'", "indices below " + std::to_string(size()),
                    std::to_string(i));
    }
    out.samples.insert(out.samples.end(), sample(i), sample(i) + sample_size());
    out.labels.push_back(labels[i]);
    if (!files.empty()) out.files.push_back(files[i]);
  }
  return out;
}

std::vector<float> Dataset::to_float(const std::vector<size_t>& indices) const {
  std::vector<float> out(indices.size() * sample_size());
  for (size_t k = 0; k < indices.size(); ++k) {
    to_unit_floats(sample(indices[k]), sample_size(), out.data() + k * sample_size());
  }
  return out;
}

std::vector<float> Dataset::to_float() const { return to_unit_floats(samples.data(), samples.size()); }

DatasetDescription fashion_mnist_description() {
  DatasetDescription d;
  d.name = "fashion-mnist";
  d.directory = "/usr/share/datasets/fashion-mnist";
  d.train_images = "train-images-idx3-ubyte.gz";
  d.train_labels = "train-labels-idx1-ubyte.gz";
  d.test_images = "t10k-images-idx3-ubyte.gz";
  d.test_labels = "t10k-labels-idx1-ubyte.gz";
  d.class_names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                   "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  d.prompt_templates = {"a photo of a {}", "a picture of a {}", "a {}",
                        "a grey photo of a {}", "an image of a {}"};
  return d;
}

DatasetDescription load_description(const fs::path& path) {
  auto j = read_json_file(path);
  const std::string where = "data set description '" + path.string() + "'";
  DatasetDescription d;
  d.name = json_field<std::string>(j, "name", where);
  if (j.contains("source")) d.source = json_field<std::string>(j, "source", where);
  if (d.source != "idx" && d.source != "image_folder" && d.source != "audio_folder") {
    fail_expected(where, "source 'idx', 'image_folder' or 'audio_folder'", "'" + d.source + "'");
  }
  d.directory = json_field<std::string>(j, "directory", where);
  if (d.directory.is_relative()) d.directory = path.parent_path() / d.directory;
  if (d.source == "idx") {
    d.train_images = json_field<std::string>(j, "train_images", where);
    d.train_labels = json_field<std::string>(j, "train_labels", where);
    d.test_images = json_field<std::string>(j, "test_images", where);
    d.test_labels = json_field<std::string>(j, "test_labels", where);
    d.class_names = json_field<std::vector<std::string>>(j, "class_names", where);
  } else {
    if (j.contains("train")) d.train = json_field<std::string>(j, "train", where);
    if (j.contains("test")) d.test = json_field<std::string>(j, "test", where);
    if (j.contains("class_names")) {
      d.class_names = json_field<std::vector<std::string>>(j, "class_names", where);
    }
    if (j.contains("skip_bad")) d.skip_bad = json_field<bool>(j, "skip_bad", where);
  }
  if (j.contains("spec")) {
    d.spec = spec_from_json(j.at("spec"), where + " spec");
  } else if (d.source != "idx") {
    throw Error(where + ": missing field 'spec' (what a sample is; see docs/data.md)");
  }
  if (d.spec) {
    const bool audio = d.spec->modality == Modality::audio;
    if (audio != (d.source == "audio_folder")) {
      fail_expected(where, std::string("an ") + (d.source == "audio_folder" ? "audio" : "image") +
                               " spec for source '" + d.source + "'",
                    d.spec->describe());
    }
    if (d.source == "idx" && d.spec->shape.channels != 1) {
      fail_expected(where, "a 1-channel spec for IDX images", d.spec->describe());
    }
  }
  if (!d.class_names.empty() && d.class_names.size() < 2) {
    fail_expected(where, "at least 2 class names", std::to_string(d.class_names.size()));
  }
  if (j.contains("prompt_templates")) {
    d.prompt_templates = json_field<std::vector<std::string>>(j, "prompt_templates", where);
  }
  if (d.prompt_templates.empty()) d.prompt_templates = {"a photo of a {}"};
  for (const auto& t : d.prompt_templates) {
    if (t.find("{}") == std::string::npos) {
      fail_expected(where + " prompt template", "a '{}' where the class name goes", "'" + t + "'");
    }
  }
  return d;
}

std::vector<uint8_t> load_sample_file(const fs::path& path, const SampleSpec& spec) {
  if (spec.modality == Modality::audio) return preprocess_audio(read_audio_file(path), spec);
  return preprocess_image(read_image_file(path), spec);
}

std::vector<uint8_t> decode_sample(const uint8_t* bytes, size_t size, const SampleSpec& spec,
                                   const std::string& name) {
  if (spec.modality == Modality::audio) return preprocess_audio(decode_audio(bytes, size, name), spec);
  return preprocess_image(decode_image(bytes, size, name), spec);
}

namespace {

// Decodes `files` in parallel into `out` (samples, files, labels kept in the given order);
// a bad file throws, or with skip_bad is listed in out.skipped and left out.
void decode_files(const std::vector<std::pair<fs::path, int>>& files, bool skip_bad,
                  Dataset& out) {
  const size_t bytes = out.sample_size();
  std::vector<uint8_t> samples(files.size() * bytes);
  std::vector<std::string> errors(files.size());
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t i = next++; i < files.size(); i = next++) {
      try {
        auto sample = load_sample_file(files[i].first, out.spec);
        std::copy(sample.begin(), sample.end(), samples.begin() + static_cast<ptrdiff_t>(i * bytes));
      } catch (const std::exception& e) {
        errors[i] = e.what();
        if (errors[i].empty()) errors[i] = files[i].first.string() + ": unreadable";
      }
    }
  };
  const size_t threads = std::min<size_t>(static_cast<size_t>(hardware_threads()), files.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  for (size_t i = 0; i < files.size(); ++i) {
    if (!errors[i].empty()) {
      if (!skip_bad) {
        throw Error(errors[i] + " (set \"skip_bad\": true in the description to leave bad files out)");
      }
      out.skipped.push_back(errors[i]);
      continue;
    }
    out.samples.insert(out.samples.end(), samples.begin() + static_cast<ptrdiff_t>(i * bytes),
                       samples.begin() + static_cast<ptrdiff_t>((i + 1) * bytes));
    out.files.push_back(files[i].first.string());
    out.labels.push_back(files[i].second);
  }
}

std::vector<fs::path> sorted_files(const fs::path& directory) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(directory)) {
    if (entry.is_regular_file() && entry.path().filename().string().front() != '.') {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

Dataset load_folder(const DatasetDescription& d, Part part, size_t limit) {
  const fs::path root = d.directory / (part == Part::train ? d.train : d.test);
  const std::string where = d.name + " (" + root.string() + ")";
  if (!fs::is_directory(root)) throw Error(where + ": expected a folder, there is none");
  std::vector<std::string> names = d.class_names;
  if (names.empty()) {
    for (const auto& entry : fs::directory_iterator(root)) {
      if (entry.is_directory()) names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    if (names.size() < 2) {
      fail_expected(where, "one subfolder per class, at least 2", std::to_string(names.size()));
    }
  }
  // Per class its files, then interleaved (class 0's first, class 1's first, ...) so that a
  // limit keeps every class.
  std::vector<std::vector<fs::path>> per_class;
  for (const auto& name : names) {
    const fs::path folder = root / name;
    if (!fs::is_directory(folder)) {
      throw Error(where + ": no folder '" + name + "' for class '" + name + "'");
    }
    per_class.push_back(sorted_files(folder));
    if (per_class.back().empty()) throw Error(where + ": class folder '" + folder.string() + "' is empty");
  }
  std::vector<std::pair<fs::path, int>> files;
  for (size_t k = 0; files.size() < (limit > 0 ? limit : SIZE_MAX); ++k) {
    bool any = false;
    for (size_t c = 0; c < per_class.size() && files.size() < (limit > 0 ? limit : SIZE_MAX); ++c) {
      if (k < per_class[c].size()) {
        files.emplace_back(per_class[c][k], static_cast<int>(c));
        any = true;
      }
    }
    if (!any) break;
  }
  Dataset out;
  out.name = d.name + (part == Part::train ? "/train" : "/test");
  out.spec = *d.spec;
  out.class_names = names;
  decode_files(files, d.skip_bad, out);
  if (out.size() == 0) throw Error(where + ": no sample could be read");
  return out;
}

}  // namespace

Dataset load_unlabelled_folder(const fs::path& directory, const SampleSpec& spec, bool skip_bad) {
  if (!fs::is_directory(directory)) {
    throw Error("'" + directory.string() + "': expected a folder of samples, there is none");
  }
  std::vector<std::pair<fs::path, int>> files;
  for (auto& f : sorted_files(directory)) files.emplace_back(std::move(f), kUnlabelled);
  if (files.empty()) throw Error("'" + directory.string() + "': expected sample files, the folder is empty");
  Dataset out;
  out.name = directory.filename().string();
  out.spec = spec;
  decode_files(files, skip_bad, out);
  return out;
}

Dataset load_dataset(const DatasetDescription& description, Part part, size_t limit) {
  if (description.source != "idx") return load_folder(description, part, limit);
  bool train = part == Part::train;
  auto dataset = load_idx_pair(description.directory / (train ? description.train_images : description.test_images),
                               description.directory / (train ? description.train_labels : description.test_labels),
                               description.class_names,
                               description.name + (train ? "/train" : "/test"));
  if (description.spec) {
    if (dataset.spec.shape != description.spec->shape) {
      fail_expected(dataset.name, "images of " + to_string(description.spec->shape) + " (the description's spec)",
                    to_string(dataset.spec.shape));
    }
    dataset.spec = *description.spec;
  }
  if (limit > 0 && limit < dataset.size()) {
    dataset.labels.resize(limit);
    dataset.samples.resize(limit * dataset.sample_size());
  }
  return dataset;
}

}  // namespace edgefm::data
