#include "models/student.h"

#include <cmath>
#include <vector>

#include "common/error.h"
#include "models/nets.h"
#include "models/student_io.h"

namespace edgefm::models {

void save_student(const std::filesystem::path& path, const ImageEncoder& encoder,
                  const TextPool& pool, json meta) {
  auto* torch_encoder = dynamic_cast<const TorchEncoder*>(&encoder);
  if (torch_encoder == nullptr) {
    throw Error("saving a student: '" + encoder.arch() + "' is not one of the edge architectures");
  }
  const Net& net = torch_encoder->net();
  meta["arch"] = net.arch;
  meta["embedding_dim"] = net.embedding_dim;
  meta["spec"] = data::to_json(net.spec);
  if (!meta.contains("version")) meta["version"] = 1;
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kStudentFormat)));
  archive.write("format_version", c10::IValue(int64_t{kStudentFormatVersion}));
  archive.write("meta", c10::IValue(meta.dump()));
  archive.write("pool", c10::IValue(pool.to_json().dump()));
  write_net(archive, "weights", net);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  auto temporary = path;
  temporary += ".tmp";
  archive.save_to(temporary.string());
  std::filesystem::rename(temporary, path);
}

namespace {

// The first named tensor holding a NaN or an infinity; empty when all are finite.
template <typename Named>
std::string first_non_finite(const Named& tensors, const char* kind) {
  for (const auto& item : tensors) {
    const torch::Tensor& t = item.value();
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) {
      const int64_t bad = (~torch::isfinite(t)).sum().item<int64_t>();
      return std::string(kind) + " '" + item.key() + "' has " + std::to_string(bad) +
             " non-finite value(s) of " + std::to_string(t.numel());
    }
  }
  return {};
}

}  // namespace

std::string unsound_reason(const ImageEncoder& encoder, int expected_dim) {
  if (auto* torch_encoder = dynamic_cast<const TorchEncoder*>(&encoder)) {
    const auto& body = *torch_encoder->net().body;
    std::string why = first_non_finite(body.named_parameters(), "parameter");
    if (why.empty()) why = first_non_finite(body.named_buffers(), "buffer");
    if (!why.empty()) return why;
  }
  if (encoder.embedding_dim() != expected_dim) {
    return "embedding dimension " + std::to_string(encoder.embedding_dim()) + ", expected " +
           std::to_string(expected_dim);
  }
  const std::vector<float> zeros(static_cast<size_t>(encoder.input_shape().numel()), 0.0f);
  std::vector<float> embedding(static_cast<size_t>(expected_dim), 0.0f);
  try {
    encoder.embed(zeros.data(), 1, embedding.data());
  } catch (const std::exception& e) {
    const std::string what = e.what();
    return "the forward pass on a zero sample failed: " + what.substr(0, what.find('\n'));
  }
  for (int i = 0; i < expected_dim; ++i) {
    if (!std::isfinite(embedding[static_cast<size_t>(i)])) {
      return "the embedding of a zero sample is not finite (element " + std::to_string(i) + ")";
    }
  }
  return {};
}

Student load_student(const std::filesystem::path& path) {
  const std::string context = "student artifact '" + path.string() + "'";
  if (!std::filesystem::is_regular_file(path)) throw Error(context + ": no such file");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const c10::Error& e) {
    throw Error(context + ": expected a torch archive written by `edgefm customize`, could not "
                "read it (" + std::string(e.what_without_backtrace()).substr(0, 160) + ")");
  }
  c10::IValue format, version, meta_text, pool_text;
  if (!archive.try_read("format", format) || !format.isString() ||
      format.toStringRef() != kStudentFormat) {
    fail_expected(context, std::string("format ") + kStudentFormat,
                  format.isString() ? format.toStringRef() : "no format entry");
  }
  if (!archive.try_read("format_version", version) || !version.isInt() ||
      version.toInt() != kStudentFormatVersion) {
    fail_expected(context, "format version " + std::to_string(kStudentFormatVersion),
                  version.isInt() ? std::to_string(version.toInt()) : "none");
  }
  if (!archive.try_read("meta", meta_text) || !archive.try_read("pool", pool_text)) {
    throw Error(context + ": missing meta or pool entry");
  }
  Student student;
  try {
    student.meta = json::parse(meta_text.toStringRef());
  } catch (const json::exception& e) {
    throw Error(context + ": meta is not valid JSON");
  }
  student.pool = TextPool::from_json(json::parse(pool_text.toStringRef()), context + " pool");
  auto arch = json_field<std::string>(student.meta, "arch", context);
  int dim = json_field<int>(student.meta, "embedding_dim", context);
  if (dim != student.pool.dim()) {
    fail_expected(context, "a pool of dim " + std::to_string(dim), std::to_string(student.pool.dim()));
  }
  // Artifacts written before specs existed took Fashion-MNIST's grey 28 x 28 images.
  const auto spec = student.meta.contains("spec")
                        ? data::spec_from_json(student.meta.at("spec"), context + " spec")
                        : data::default_image_spec();
  Net net = make_edge_net(arch, spec, dim);
  read_net(archive, "weights", net, context);
  student.encoder = std::make_shared<TorchEncoder>(std::move(net));
  return student;
}

}  // namespace edgefm::models

namespace edgefm::models {

Net clone_student_net(const Student& student) {
  auto* encoder = dynamic_cast<const TorchEncoder*>(student.encoder.get());
  if (encoder == nullptr) throw Error("warm start: the student is not a torch edge model");
  Net copy = encoder->net();
  copy.body = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(encoder->net().body->clone());
  return copy;
}

}  // namespace edgefm::models
