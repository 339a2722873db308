#pragma once
// A data set in memory: one sample tensor per sample (C x H x W bytes, see sample_spec.h),
// integer labels, class names. Sources (IDX files, image folders, audio folders, unlabelled
// folders) are chosen by the data set description and all end up here.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/sample_spec.h"

namespace edgefm::data {

constexpr int kUnlabelled = -1;

struct Dataset {
  std::string name;
  SampleSpec spec = default_image_spec();
  std::vector<uint8_t> samples;  // size() * sample_size() bytes, sample after sample
  std::vector<int> labels;       // one per sample, in [0, class_names.size()) or kUnlabelled
  std::vector<std::string> class_names;
  std::vector<std::string> files;    // the source file of each sample (folders; empty for IDX)
  std::vector<std::string> skipped;  // "file: why" for each bad file left out (skip_bad)

  size_t size() const { return labels.size(); }
  size_t sample_size() const { return static_cast<size_t>(spec.shape.numel()); }
  const uint8_t* sample(size_t i) const { return samples.data() + i * sample_size(); }

  // The samples at `indices`, in that order (labels, names and files carried along).
  Dataset subset(const std::vector<size_t>& indices) const;
  // Samples as the models' [0, 1] floats, n x C x H x W.
  std::vector<float> to_float(const std::vector<size_t>& indices) const;
  std::vector<float> to_float() const;
};

enum class Part { train, test };

// What a data set is: where its files are, what its classes are called and what a sample
// is. Loaded from a JSON description (configs/fashion-mnist.json, the keywords data set's
// keywords.json; fields in docs/data.md) so another data set needs no code.
struct DatasetDescription {
  std::string name;
  // "idx" (IDX image/label file pairs), "image_folder" or "audio_folder" (one subfolder per
  // class under the train and test folders).
  std::string source = "idx";
  std::filesystem::path directory;
  std::string train_images, train_labels, test_images, test_labels;  // idx: file names
  std::string train = "train", test = "test";  // folders: the parts' subfolders
  std::vector<std::string> class_names;        // folders: default the sorted subfolder names
  // Extra prompt templates ("a photo of a {}") used to train the FM's text side.
  std::vector<std::string> prompt_templates;
  // What a sample is. IDX descriptions may leave it out: grey images of the files' size.
  std::optional<SampleSpec> spec;
  // Folders: leave out files that cannot be decoded (listed in Dataset::skipped) instead of
  // failing on the first one.
  bool skip_bad = false;
};

// Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
DatasetDescription fashion_mnist_description();
// Reads a description file; throws Error naming the file and the missing/wrong field.
DatasetDescription load_description(const std::filesystem::path& path);

// Loads the train or test part; `limit` > 0 keeps the first `limit` samples (folders: after
// an order that interleaves the classes, so a limit keeps every class).
Dataset load_dataset(const DatasetDescription& description, Part part, size_t limit = 0);

// One file (PNG, JPEG, WAV, ...) to its sample tensor under `spec`; throws Error naming it.
std::vector<uint8_t> load_sample_file(const std::filesystem::path& path, const SampleSpec& spec);
// The same for an encoded file held in memory (an application's request); `name` is said in
// errors.
std::vector<uint8_t> decode_sample(const uint8_t* bytes, size_t size, const SampleSpec& spec,
                                   const std::string& name);

// Every file under `directory` (recursively, sorted by path) as unlabelled samples.
Dataset load_unlabelled_folder(const std::filesystem::path& directory, const SampleSpec& spec,
                               bool skip_bad = false);

}  // namespace edgefm::data
