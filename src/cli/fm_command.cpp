// edgefm fm train | fm eval: the reference FM.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "models/edge.h"
#include "models/fm.h"
#include "models/foundation.h"

namespace edgefm::cli {
namespace {

struct FmTrainOptions {
  DataOptions data;
  models::FmTrainParams params = models::fm_default_params();
  std::string out = "models/fm.pt";
  std::string json_path;
  bool reuse = false;
};

void run_fm_train(const FmTrainOptions& o) {
  if (o.reuse && std::filesystem::exists(o.out)) {
    // Only a sound file trained with the same settings is reused.
    try {
      const json meta = models::load_foundation_model(o.out).meta;
      const json wanted = {{"epochs", o.params.epochs}, {"width", o.params.width},
                           {"embedding_dim", o.params.embedding_dim},
                           {"batch_size", o.params.batch_size}, {"seed", o.params.seed}};
      std::string differs;
      for (const auto& [key, value] : wanted.items()) {
        if (meta.value(key, json()) != value) differs += " " + key;
      }
      if (differs.empty()) {
        std::fprintf(stderr, "[fm train] reusing %s\n", o.out.c_str());
        return;
      }
      std::fprintf(stderr, "[fm train] not reusing %s: trained with other settings (%s ); training anew\n",
                   o.out.c_str(), differs.c_str());
    } catch (const Error& e) {
      std::fprintf(stderr, "[fm train] not reusing %s: %s; training anew\n", o.out.c_str(), e.what());
    }
  }
  models::configure_torch_threads();
  auto description = o.data.description();
  auto train = data::load_dataset(description, data::Part::train, o.data.train_limit);
  auto test = data::load_dataset(description, data::Part::test, o.data.test_limit);
  std::fprintf(stderr, "[fm train] %zu training images, %zu test images, %d epochs -> %s\n",
               train.size(), test.size(), o.params.epochs, o.out.c_str());
  auto result = models::train_fm(train, test, description.prompt_templates, o.params, o.out);
  std::printf("FM trained: %lld parameters, %.1f s (%.0f img/s), loss %.4f, temperature %.4f, "
              "zero-shot test accuracy %.2f %%\n",
              static_cast<long long>(result.parameters), result.seconds,
              result.images_per_second, result.final_loss, result.temperature,
              100 * result.test_accuracy);
  if (!o.json_path.empty()) {
    write_json_file(o.json_path, {{"fm", o.out},
                                  {"parameters", result.parameters},
                                  {"train_seconds", result.seconds},
                                  {"images_per_second", result.images_per_second},
                                  {"final_loss", result.final_loss},
                                  {"temperature", result.temperature},
                                  {"test_accuracy", result.test_accuracy},
                                  {"epochs", o.params.epochs},
                                  {"provenance", provenance()}});
  }
}

struct FmEvalOptions {
  DataOptions data;
  FmOptions fm;
  std::string json_path;
};

void run_fm_eval(const FmEvalOptions& o) {
  models::configure_torch_threads();
  auto fm = o.fm.load();
  auto test = data::load_dataset(o.data.description(), data::Part::test, o.data.test_limit);
  auto accuracy = zero_shot_accuracy(*fm.image, fm.pool, test);
  auto latency = models::measure_latency(*fm.image, 1);
  Table table({"model", "params", "MACs", "batch-1 ms", "zero-shot top-1"});
  table.add_row({fm.version, std::to_string(fm.image->parameter_count()),
                 std::to_string(fm.image->multiply_adds()), fmt_num(latency.median_ms, 3),
                 fmt_percent(accuracy)});
  table.print(std::cout);
  if (!o.json_path.empty()) {
    write_json_file(o.json_path, {{"version", fm.version},
                                  {"accuracy", accuracy},
                                  {"params", fm.image->parameter_count()},
                                  {"multiply_adds", fm.image->multiply_adds()},
                                  {"latency_ms_b1", latency.median_ms},
                                  {"test_images", test.size()},
                                  {"provenance", provenance()}});
  }
}

}  // namespace

void add_fm_command(CLI::App& app) {
  auto* fm = app.add_subcommand(
      "fm", "The reference foundation model: train it, evaluate it; or write a CLIP-shaped stand-in");
  fm->require_subcommand(1);

  auto train_options = std::make_shared<FmTrainOptions>();
  auto* train = fm->add_subcommand(
      "train", "Train the reference FM CLIP-style (image encoder + prompt text encoder) and save "
               "one versioned file");
  add_data_options(*train, train_options->data);
  auto& p = train_options->params;
  train->add_option("--out", train_options->out, "Output file")->capture_default_str();
  train->add_option("--epochs", p.epochs, "Passes over the training set")->capture_default_str()
      ->check(positive_number());
  train->add_option("--batch-size", p.batch_size, "Images per step")->capture_default_str()
      ->check(positive_number());
  train->add_option("--lr", p.learning_rate, "Peak learning rate (AdamW, one-cycle cosine)")
      ->capture_default_str()
      ->check(positive_number());
  train->add_option("--width", p.width, "Channels of the first conv block")->capture_default_str()
      ->check(positive_number());
  train->add_option("--dim", p.embedding_dim, "Embedding dimension")->capture_default_str()
      ->check(positive_number());
  train->add_option("--seed", p.seed, "Random seed")->capture_default_str();
  train->add_flag("--reuse", train_options->reuse, "Keep an existing --out file instead of training");
  train->add_option("--json", train_options->json_path, "Write the training summary as JSON");
  train->callback([train_options] { run_fm_train(*train_options); });

  auto eval_options = std::make_shared<FmEvalOptions>();
  auto* eval = fm->add_subcommand("eval", "Zero-shot top-1 accuracy of the FM on the test set");
  add_data_options(*eval, eval_options->data);
  add_fm_options(*eval, eval_options->fm);
  eval->add_option("--json", eval_options->json_path, "Write the result as JSON");
  eval->callback([eval_options] { run_fm_eval(*eval_options); });

  struct StandInOptions {
    std::vector<std::string> classes;
    std::string out;
    uint64_t seed = 3;
  };
  auto stand_in = std::make_shared<StandInOptions>();
  auto* clip = fm->add_subcommand(
      "clip-shaped",
      "Write a CLIP-shaped stand-in FM with random weights (fm.ts: TorchScript, 3x224x224 ->\n"
      "512, 24 M parameters; pool.json; spec.json) to try and measure the real-FM path\n"
      "(--fm-torchscript, --fm-pool, --fm-spec) where no real weights can be had. It recognizes\n"
      "nothing. A real CLIP: tools/export_clip.py and docs/real-fm.md");
  clip->add_option("--classes", stand_in->classes, "class names of the pool (comma-separated)")
      ->required()
      ->delimiter(',');
  clip->add_option("--out-dir", stand_in->out, "folder to write")->required();
  clip->add_option("--seed", stand_in->seed, "random seed of the weights")->capture_default_str();
  clip->callback([stand_in] {
    models::write_clip_shaped_stand_in(stand_in->out, stand_in->classes, stand_in->seed);
    std::fprintf(stderr, "[fm] wrote %s/fm.ts, pool.json, spec.json\n", stand_in->out.c_str());
  });
}

}  // namespace edgefm::cli
