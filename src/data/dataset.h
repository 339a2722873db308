#pragma once
// An image classification data set in memory: 8-bit grey images, integer labels, class names.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace edgefm::data {

struct Dataset {
  std::string name;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;  // size() * rows * cols, row-major, image after image
  std::vector<int> labels;      // one per image, in [0, class_names.size())
  std::vector<std::string> class_names;

  size_t size() const { return labels.size(); }
  size_t image_size() const { return static_cast<size_t>(rows) * cols; }
  const uint8_t* image(size_t i) const { return pixels.data() + i * image_size(); }

  // The images at `indices`, in that order (labels and names carried along).
  Dataset subset(const std::vector<size_t>& indices) const;
  // Images as floats in [0, 1], n x 1 x rows x cols (the encoders' input).
  std::vector<float> to_float(const std::vector<size_t>& indices) const;
  std::vector<float> to_float() const;
};

enum class Part { train, test };

// What a data set is: where its IDX files are and what its classes are called. Loaded from
// a JSON description (configs/fashion-mnist.json) so another IDX data set needs no code.
struct DatasetDescription {
  std::string name;
  std::filesystem::path directory;
  std::string train_images, train_labels, test_images, test_labels;  // file names in directory
  std::vector<std::string> class_names;
  // Extra prompt templates ("a photo of a {}") used to train the FM's text side.
  std::vector<std::string> prompt_templates;
};

// Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
DatasetDescription fashion_mnist_description();
// Reads a description file; throws Error naming the file and the missing/wrong field.
DatasetDescription load_description(const std::filesystem::path& path);

// Loads the train or test part; `limit` > 0 keeps the first `limit` images.
Dataset load_dataset(const DatasetDescription& description, Part part, size_t limit = 0);

}  // namespace edgefm::data
