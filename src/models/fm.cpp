#include "models/fm.h"

#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "common/checksum.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/progress.h"
#include "models/foundation.h"
#include "models/nets.h"

namespace edgefm::models {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

constexpr const char* kFormat = "edgefm-fm";
// 2: the sample spec in meta, adaptive pooling before the head (version 1 files predate both).
constexpr int kVersion = 2;

std::string fill_template(const std::string& templ, const std::string& name) {
  auto at = templ.find("{}");
  return templ.substr(0, at) + name + templ.substr(at + 2);
}

// Bag of words -> MLP -> embedding. Small on purpose: ten class names and a few templates.
struct TextNetImpl : nn::Module {
  TextNetImpl(int64_t vocabulary, int64_t dim)
      : words(register_module("words", nn::EmbeddingBag(nn::EmbeddingBagOptions(vocabulary, dim)
                                                            .mode(torch::kMean)))),
        mlp(register_module("mlp", nn::Sequential(nn::Linear(dim, dim), nn::ReLU(),
                                                  nn::Linear(dim, dim)))) {}
  // ids: all prompts' word ids concatenated; offsets: where each prompt starts.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& offsets) {
    return F::normalize(mlp->forward(words->forward(ids, offsets)),
                        F::NormalizeFuncOptions().dim(1));
  }
  nn::EmbeddingBag words;
  nn::Sequential mlp;
};
TORCH_MODULE(TextNet);

struct Vocabulary {
  std::map<std::string, int64_t> ids;

  void add(const std::string& prompt) {
    for (const auto& w : prompt_words(prompt)) ids.emplace(w, static_cast<int64_t>(ids.size()));
  }
  // Word ids of several prompts in EmbeddingBag's (ids, offsets) form. Throws Error naming
  // the first unknown word.
  std::pair<torch::Tensor, torch::Tensor> encode(const std::vector<std::string>& prompts) const {
    std::vector<int64_t> flat, offsets;
    for (const auto& prompt : prompts) {
      offsets.push_back(static_cast<int64_t>(flat.size()));
      auto words = prompt_words(prompt);
      if (words.empty()) throw Error("empty prompt: expected at least one word");
      for (const auto& w : words) {
        auto it = ids.find(w);
        if (it == ids.end()) {
          throw Error("the FM's text encoder does not know the word '" + w + "' (in \"" + prompt +
                      "\"): a class unknown to the FM");
        }
        flat.push_back(it->second);
      }
    }
    return {torch::tensor(flat, torch::kLong), torch::tensor(offsets, torch::kLong)};
  }
  json to_json() const {
    std::vector<std::string> words(ids.size());
    for (const auto& [w, id] : ids) words[static_cast<size_t>(id)] = w;
    return words;
  }
  static Vocabulary from_json(const json& j) {
    Vocabulary v;
    for (const auto& w : j.get<std::vector<std::string>>()) {
      v.ids.emplace(w, static_cast<int64_t>(v.ids.size()));
    }
    return v;
  }
};

// Prompts of every class, class-major: prompts[c * templates + t].
std::vector<std::string> class_prompts(const std::vector<std::string>& names,
                                       const std::vector<std::string>& templates) {
  std::vector<std::string> prompts;
  for (const auto& name : names) {
    for (const auto& t : templates) prompts.push_back(fill_template(t, name));
  }
  return prompts;
}

class ReferenceTextEncoder final : public TextEncoder {
 public:
  ReferenceTextEncoder(TextNet net, Vocabulary vocabulary, int dim)
      : net_(std::move(net)), vocabulary_(std::move(vocabulary)), dim_(dim) {
    net_->eval();
  }
  int embedding_dim() const override { return dim_; }
  std::vector<float> embed(const std::string& prompt) const override {
    torch::NoGradGuard no_grad;
    auto [ids, offsets] = vocabulary_.encode({prompt});
    auto e = net_->forward(ids, offsets).contiguous();
    return {e.data_ptr<float>(), e.data_ptr<float>() + dim_};
  }

 private:
  mutable TextNet net_;
  Vocabulary vocabulary_;
  int dim_;
};

torch::Tensor images_tensor(const data::Dataset& dataset) {
  const auto& shape = dataset.spec.shape;
  auto samples = torch::from_blob(const_cast<uint8_t*>(dataset.samples.data()),
                                  {static_cast<int64_t>(dataset.size()), shape.channels,
                                   shape.height, shape.width},
                                  torch::kUInt8);
  return samples.clone();
}

torch::Tensor to_input(const torch::Tensor& pixels) { return pixels.to(torch::kFloat) / 255.0; }

// Class pool: per class, the normalised mean of its prompts' embeddings.
torch::Tensor pool_tensor(TextNet& text, const Vocabulary& vocabulary,
                          const std::vector<std::string>& names,
                          const std::vector<std::string>& templates) {
  auto [ids, offsets] = vocabulary.encode(class_prompts(names, templates));
  auto per_prompt = text->forward(ids, offsets);
  auto per_class = per_prompt.view({static_cast<int64_t>(names.size()),
                                    static_cast<int64_t>(templates.size()), -1})
                       .mean(1);
  return F::normalize(per_class, F::NormalizeFuncOptions().dim(1));
}

double zero_shot_accuracy(const Net& image, const torch::Tensor& pool, const data::Dataset& test) {
  torch::NoGradGuard no_grad;
  image.body->eval();
  auto pixels = images_tensor(test);
  auto labels = torch::tensor(std::vector<int64_t>(test.labels.begin(), test.labels.end()));
  int64_t correct = 0;
  for (int64_t start = 0; start < pixels.size(0); start += 512) {
    auto end = std::min<int64_t>(start + 512, pixels.size(0));
    auto e = embed_tensor(image, to_input(pixels.slice(0, start, end)));
    auto predicted = e.matmul(pool.t()).argmax(1);
    correct += predicted.eq(labels.slice(0, start, end)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(pixels.size(0));
}

// SHA-256 over the file's content as loaded: every tensor of both encoders (name, shape and
// bytes) and the JSON entries. Written into the file and recomputed at load, so weights that
// changed on disk (LibTorch does not check the zip's CRCs) are refused.
std::string content_digest(const Net& image, const TextNet& text, const std::string& meta,
                           const std::string& vocabulary, const std::string& pool) {
  Sha256 hash;
  for (const std::string* part : {&meta, &vocabulary, &pool}) {
    hash.add(*part);
    hash.add(std::string_view("\0", 1));
  }
  auto add_module = [&hash](const std::string& prefix, const torch::nn::Module& module) {
    auto add = [&](const std::string& name, const torch::Tensor& t) {
      const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
      std::string header = prefix + name + '\0';
      for (int64_t d : c.sizes()) header += std::to_string(d) + 'x';
      hash.add(header);
      hash.add(c.data_ptr(), c.numel() * c.element_size());
    };
    for (const auto& p : module.named_parameters()) add(p.key(), p.value());
    for (const auto& b : module.named_buffers()) add(b.key(), b.value());
  };
  add_module("image.", *image.body);
  add_module("text.", *text);
  return hash.hex();
}

void save_fm(const std::filesystem::path& out, const Net& image, const TextNet& text,
             const Vocabulary& vocabulary, const TextPool& pool, const json& meta) {
  torch::serialize::OutputArchive archive;
  const std::string meta_text = meta.dump(), vocabulary_text = vocabulary.to_json().dump(),
                    pool_text = pool.to_json().dump();
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("version", c10::IValue(int64_t{kVersion}));
  archive.write("meta", c10::IValue(meta_text));
  archive.write("vocabulary", c10::IValue(vocabulary_text));
  archive.write("pool", c10::IValue(pool_text));
  archive.write("content_sha256",
                c10::IValue(content_digest(image, text, meta_text, vocabulary_text, pool_text)));
  write_net(archive, "image", image);
  torch::serialize::OutputArchive text_archive;
  text->save(text_archive);
  archive.write("text", text_archive);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  auto temporary = out;
  temporary += ".tmp";
  archive.save_to(temporary.string());
  std::filesystem::rename(temporary, out);
}

std::string read_string(torch::serialize::InputArchive& archive, const std::string& key,
                        const std::string& context) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isString()) {
    throw Error(context + ": missing '" + key + "' entry");
  }
  return value.toStringRef();
}

}  // namespace

std::vector<std::string> prompt_words(const std::string& prompt) {
  std::vector<std::string> words;
  std::string current;
  for (char ch : prompt) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || ch == '-') {
      current += static_cast<char>(std::tolower(c));
    } else if (!current.empty()) {
      words.push_back(current);
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(current);
  return words;
}

FmTrainParams fm_default_params() { return FmTrainParams{}; }

FmTrainResult train_fm(const data::Dataset& train_set, const data::Dataset& test,
                       const std::vector<std::string>& templates, const FmTrainParams& params,
                       const std::filesystem::path& out) {
  if (train_set.size() == 0) throw Error("FM training: expected training images, got none");
  if (templates.empty()) throw Error("FM training: expected at least one prompt template");
  if (params.epochs <= 0 || params.batch_size <= 0) {
    fail_expected("FM training parameters", "positive epochs and batch size",
                  std::to_string(params.epochs) + " epochs, batch " +
                      std::to_string(params.batch_size));
  }
  torch::manual_seed(params.seed);
  const auto& names = train_set.class_names;
  Vocabulary vocabulary;
  for (const auto& p : class_prompts(names, templates)) vocabulary.add(p);

  if (test.size() > 0) {
    data::check_same_spec(train_set.spec, "the training set", test.spec, "the test set");
  }
  Net image = make_fm_net(train_set.spec, params.embedding_dim, params.width);
  TextNet text(static_cast<int64_t>(vocabulary.ids.size()), params.embedding_dim);
  auto log_scale = torch::full({1}, std::log(1.0 / params.initial_temperature),
                               torch::requires_grad());

  std::vector<torch::Tensor> parameters = image.body->parameters();
  for (auto& p : text->parameters()) parameters.push_back(p);
  parameters.push_back(log_scale);
  torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(params.learning_rate)
                                                .weight_decay(params.weight_decay));

  auto pixels = images_tensor(train_set);
  auto labels =
      torch::tensor(std::vector<int64_t>(train_set.labels.begin(), train_set.labels.end()));
  const int64_t n = pixels.size(0);
  const int64_t steps_per_epoch = (n + params.batch_size - 1) / params.batch_size;
  const int64_t total_steps = steps_per_epoch * params.epochs;
  auto [prompt_ids, prompt_offsets] = vocabulary.encode(class_prompts(names, templates));
  const auto classes = static_cast<int64_t>(names.size());
  const auto num_templates = static_cast<int64_t>(templates.size());

  FmTrainResult result;
  result.parameters = count_parameters(*image.body) + count_parameters(*text);
  Progress progress("fm train", total_steps * params.batch_size, "img");
  auto started = std::chrono::steady_clock::now();
  int64_t step = 0;
  double loss_average = 0;
  for (int epoch = 1; epoch <= params.epochs; ++epoch) {
    image.body->train();
    text->train();
    auto order = torch::randperm(n);
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      // One-cycle schedule: linear warm-up over the first 5 % of steps, then cosine decay.
      double warm = std::max<double>(1.0, 0.05 * total_steps);
      double lr = step < warm ? params.learning_rate * (step + 1) / warm
                              : params.learning_rate * 0.5 *
                                    (1 + std::cos(M_PI * (step - warm) / (total_steps - warm)));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      auto index = order.slice(0, s * params.batch_size,
                               std::min<int64_t>((s + 1) * params.batch_size, n));
      auto x = augment(to_input(pixels.index_select(0, index)), params.max_shift,
                       train_set.spec.modality);
      auto y = labels.index_select(0, index);

      auto image_embeddings = embed_tensor(image, x);
      // Every prompt embedded on every step (10 classes x a few templates is cheap); the
      // loss asks each template on its own and their mean (the pool) to classify the image.
      auto per_prompt = text->forward(prompt_ids, prompt_offsets).view({classes, num_templates, -1});
      auto scale = log_scale.clamp(0, std::log(100.0)).exp();
      auto pool = F::normalize(per_prompt.mean(1), F::NormalizeFuncOptions().dim(1));
      auto loss = F::cross_entropy(scale * image_embeddings.matmul(pool.t()), y);
      for (int64_t t = 0; t < num_templates; ++t) {
        auto logits = scale * image_embeddings.matmul(per_prompt.select(1, t).t());
        loss = loss + F::cross_entropy(logits, y) / static_cast<double>(num_templates);
      }
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();

      double value = loss.item<double>();
      loss_average = step == 0 ? value : 0.98 * loss_average + 0.02 * value;
      progress.update((step + 1) * params.batch_size,
                      {{"epoch", std::to_string(epoch) + "/" + std::to_string(params.epochs)},
                       {"step", std::to_string(s + 1) + "/" + std::to_string(steps_per_epoch)},
                       {"loss", std::to_string(loss_average).substr(0, 6)}});
    }
    if (test.size() > 0) {
      torch::NoGradGuard no_grad;
      text->eval();
      auto pool = pool_tensor(text, vocabulary, names, templates);
      result.test_accuracy = zero_shot_accuracy(image, pool, test);
      progress.update((step) * params.batch_size,
                      {{"epoch", std::to_string(epoch) + "/" + std::to_string(params.epochs)},
                       {"zero-shot", std::to_string(100 * result.test_accuracy).substr(0, 5) + "%"}});
      std::fprintf(stderr, "[fm train] epoch %d: zero-shot test accuracy %.2f %%\n", epoch,
                   100 * result.test_accuracy);
    }
  }
  progress.finish({{"loss", std::to_string(loss_average).substr(0, 6)}});
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.images_per_second = static_cast<double>(total_steps * params.batch_size) / result.seconds;
  result.final_loss = loss_average;
  result.temperature = 1.0 / log_scale.clamp(0, std::log(100.0)).exp().item<double>();

  image.body->eval();
  text->eval();
  TextPool pool(params.embedding_dim);
  {
    torch::NoGradGuard no_grad;
    auto p = pool_tensor(text, vocabulary, names, templates).contiguous();
    for (int64_t c = 0; c < classes; ++c) {
      const float* row = p.data_ptr<float>() + c * params.embedding_dim;
      pool.set(names[static_cast<size_t>(c)], std::vector<float>(row, row + params.embedding_dim));
    }
  }
  json meta = {{"arch", image.arch},
               {"spec", data::to_json(train_set.spec)},
               {"embedding_dim", params.embedding_dim},
               {"width", params.width},
               {"templates", templates},
               {"dataset", train_set.name},
               {"train_images", train_set.size()},
               {"epochs", params.epochs},
               {"batch_size", params.batch_size},
               {"learning_rate", params.learning_rate},
               {"seed", params.seed},
               {"temperature", result.temperature},
               {"parameters", result.parameters},
               {"train_seconds", result.seconds}};
  if (result.test_accuracy >= 0) meta["test_accuracy"] = result.test_accuracy;
  save_fm(out, image, text, vocabulary, pool, meta);
  return result;
}

FoundationModel load_foundation_model(const std::filesystem::path& path,
                                      const std::string& device) {
  const std::string context = "FM file '" + path.string() + "'";
  if (!std::filesystem::is_regular_file(path)) {
    throw Error(context + ": no such file (train one with `edgefm fm train`)");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const c10::Error& e) {
    throw Error(context + ": expected a torch archive written by `edgefm fm train`, could not "
                "read it (" + std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
  auto format = read_string(archive, "format", context);
  if (format != kFormat) fail_expected(context, std::string("format ") + kFormat, format);
  c10::IValue version;
  if (!archive.try_read("version", version) || !version.isInt() || version.toInt() != kVersion) {
    fail_expected(context, "version " + std::to_string(kVersion) + " (retrain older files with `edgefm fm train`)",
                  version.isInt() ? std::to_string(version.toInt()) : "none");
  }
  const std::string meta_text = read_string(archive, "meta", context);
  const std::string vocabulary_text = read_string(archive, "vocabulary", context);
  const std::string pool_text = read_string(archive, "pool", context);
  auto meta = parse_untrusted_json(meta_text);
  auto vocabulary = Vocabulary::from_json(parse_untrusted_json(vocabulary_text));
  auto pool = TextPool::from_json(parse_untrusted_json(pool_text), context);
  const int dim = json_field<int>(meta, "embedding_dim", context);
  const auto spec = data::spec_from_json(meta.value("spec", json::object()), context + " spec");

  Net image = make_fm_net(spec, dim, json_field<int>(meta, "width", context));
  read_net(archive, "image", image, context);
  TextNet text(static_cast<int64_t>(vocabulary.ids.size()), dim);
  torch::serialize::InputArchive text_archive;
  if (!archive.try_read("text", text_archive)) throw Error(context + ": no text encoder weights");
  try {
    text->load(text_archive);
  } catch (const c10::Error& e) {
    throw Error(context + ": text encoder weights do not fit (" +
                std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
  c10::IValue recorded;
  if (!archive.try_read("content_sha256", recorded) || !recorded.isString()) {
    throw Error(context + ": no content checksum (written by an older edgefm; retrain it with "
                "`edgefm fm train`)");
  }
  const std::string digest = recorded.toStringRef();
  if (content_digest(image, text, meta_text, vocabulary_text, pool_text) != digest) {
    throw Error(context + ": corrupt: its weights or settings do not match the checksum written "
                "with them (retrain it or copy it again)");
  }
  FoundationModel fm;
  fm.image = std::make_shared<TorchEncoder>(std::move(image), device);
  fm.text = std::make_shared<ReferenceTextEncoder>(text, std::move(vocabulary), dim);
  fm.pool = std::move(pool);
  fm.meta = meta;
  fm.version = "reference-fm v" + std::to_string(kVersion) + " " + digest.substr(0, 12);
  return fm;
}

namespace {

class TorchScriptEncoder final : public ImageEncoder {
 public:
  TorchScriptEncoder(torch::jit::Module module, data::SampleSpec spec, std::string name)
      : module_(std::move(module)), spec_(std::move(spec)), name_(std::move(name)) {
    const auto& shape_ = spec_.shape;
    module_.eval();
    int64_t total = 0;
    for (const auto& p : module_.parameters()) total += p.numel();
    parameters_ = total;
    torch::NoGradGuard no_grad;
    auto probe = forward(torch::zeros({1, shape_.channels, shape_.height, shape_.width}));
    dim_ = static_cast<int>(probe.size(1));
  }
  std::string arch() const override { return "torchscript:" + name_; }
  int embedding_dim() const override { return dim_; }
  const data::SampleSpec& spec() const override { return spec_; }
  int64_t parameter_count() const override { return parameters_; }
  int64_t multiply_adds() const override { return 0; }
  void embed(const float* images, int64_t n, float* out) const override {
    if (n <= 0) return;
    torch::NoGradGuard no_grad;
    const auto& shape = spec_.shape;
    auto input = torch::from_blob(const_cast<float*>(images),
                                  {n, shape.channels, shape.height, shape.width});
    auto e = forward(normalize_samples(spec_, input)).contiguous();
    std::copy_n(e.data_ptr<float>(), n * dim_, out);
  }

 private:
  torch::Tensor forward(const torch::Tensor& input) const {
    auto output = const_cast<torch::jit::Module&>(module_).forward({input});
    if (!output.isTensor()) throw Error("TorchScript FM '" + name_ + "': expected a tensor output");
    auto e = output.toTensor().to(torch::kFloat);
    if (e.dim() != 2 || e.size(0) != input.size(0)) {
      fail_expected("TorchScript FM '" + name_ + "' output", "shape [n, D]", c10::str(e.sizes()));
    }
    return F::normalize(e, F::NormalizeFuncOptions().dim(1));
  }

  torch::jit::Module module_;
  data::SampleSpec spec_;
  std::string name_;
  int64_t parameters_ = 0;
  int dim_ = 0;
};

}  // namespace

FoundationModel load_torchscript_foundation_model(const std::filesystem::path& module_path,
                                                  const std::filesystem::path& pool_path,
                                                  const data::SampleSpec& spec) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(module_path.string());
  } catch (const c10::Error& e) {
    throw Error("TorchScript FM '" + module_path.string() +
                "': expected a TorchScript module file, could not load it (" +
                std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
  FoundationModel fm;
  data::validate(spec, "TorchScript FM '" + module_path.string() + "' spec");
  auto encoder = std::make_shared<TorchScriptEncoder>(std::move(module), spec,
                                                      module_path.filename().string());
  fm.pool = TextPool::load(pool_path);
  if (fm.pool.dim() != encoder->embedding_dim()) {
    fail_expected("embedding pool '" + pool_path.string() + "'",
                  "dim " + std::to_string(encoder->embedding_dim()) + " (the TorchScript FM's)",
                  std::to_string(fm.pool.dim()));
  }
  fm.image = std::move(encoder);
  fm.version = "torchscript " + module_path.filename().string();
  return fm;
}

void write_clip_shaped_stand_in(const std::filesystem::path& dir,
                                const std::vector<std::string>& class_names, uint64_t seed) {
  constexpr int width = 768, hidden = 3072, dim = 512, blocks = 5;
  if (class_names.size() < 2) {
    fail_expected("CLIP-shaped stand-in", "at least 2 class names", std::to_string(class_names.size()));
  }
  std::filesystem::create_directories(dir);
  torch::manual_seed(seed);
  torch::jit::Module module("ClipShaped");
  module.register_parameter("patch", torch::randn({width, 3, 16, 16}) * 0.02, false);
  std::string body =
      "def forward(self, x):\n"
      "    h = torch.conv2d(x, self.patch, None, [16, 16]).mean([2, 3])\n";
  for (int b = 0; b < blocks; ++b) {
    const auto i = std::to_string(b);
    module.register_parameter("up" + i, torch::randn({width, hidden}) * 0.02, false);
    module.register_parameter("down" + i, torch::randn({hidden, width}) * 0.02, false);
    body += "    h = h + torch.relu(h.matmul(self.up" + i + ")).matmul(self.down" + i + ")\n";
  }
  module.register_parameter("proj", torch::randn({width, dim}) * 0.03, false);
  body += "    return h.matmul(self.proj)\n";
  module.define(body);
  module.save((dir / "fm.ts").string());

  TextPool pool(dim);
  for (const auto& name : class_names) {
    auto v = torch::randn({dim});
    v = v / v.norm();
    pool.set(name, std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + dim));
  }
  pool.save(dir / "pool.json");
  data::SampleSpec spec;
  spec.shape = {3, 224, 224};
  spec.mean = {0.48145466f, 0.4578275f, 0.40821073f};
  spec.std = {0.26862954f, 0.26130258f, 0.27577711f};
  write_json_file(dir / "spec.json", data::to_json(spec));
}

}  // namespace edgefm::models
