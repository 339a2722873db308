#include "data/dataset.h"

#include "common/error.h"
#include "common/json_io.h"
#include "data/idx.h"

namespace edgefm::data {

Dataset Dataset::subset(const std::vector<size_t>& indices) const {
  Dataset out;
  out.name = name;
  out.rows = rows;
  out.cols = cols;
  out.class_names = class_names;
  out.pixels.reserve(indices.size() * image_size());
  out.labels.reserve(indices.size());
  for (size_t i : indices) {
    if (i >= size()) {
      fail_expected("subset of '" + name + "'", "indices below " + std::to_string(size()),
                    std::to_string(i));
    }
    out.pixels.insert(out.pixels.end(), image(i), image(i) + image_size());
    out.labels.push_back(labels[i]);
  }
  return out;
}

std::vector<float> Dataset::to_float(const std::vector<size_t>& indices) const {
  std::vector<float> out;
  out.reserve(indices.size() * image_size());
  for (size_t i : indices) {
    const uint8_t* p = image(i);
    for (size_t k = 0; k < image_size(); ++k) out.push_back(p[k] / 255.0f);
  }
  return out;
}

std::vector<float> Dataset::to_float() const {
  std::vector<float> out(pixels.size());
  for (size_t k = 0; k < pixels.size(); ++k) out[k] = pixels[k] / 255.0f;
  return out;
}

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

DatasetDescription load_description(const std::filesystem::path& path) {
  auto j = read_json_file(path);
  const std::string where = "data set description '" + path.string() + "'";
  DatasetDescription d;
  d.name = json_field<std::string>(j, "name", where);
  d.directory = json_field<std::string>(j, "directory", where);
  if (d.directory.is_relative()) d.directory = path.parent_path() / d.directory;
  d.train_images = json_field<std::string>(j, "train_images", where);
  d.train_labels = json_field<std::string>(j, "train_labels", where);
  d.test_images = json_field<std::string>(j, "test_images", where);
  d.test_labels = json_field<std::string>(j, "test_labels", where);
  d.class_names = json_field<std::vector<std::string>>(j, "class_names", where);
  if (d.class_names.size() < 2) {
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

Dataset load_dataset(const DatasetDescription& description, Part part, size_t limit) {
  bool train = part == Part::train;
  auto dataset = load_idx_pair(description.directory / (train ? description.train_images : description.test_images),
                               description.directory / (train ? description.train_labels : description.test_labels),
                               description.class_names,
                               description.name + (train ? "/train" : "/test"));
  if (limit > 0 && limit < dataset.size()) {
    dataset.labels.resize(limit);
    dataset.pixels.resize(limit * dataset.image_size());
  }
  return dataset;
}

}  // namespace edgefm::data
