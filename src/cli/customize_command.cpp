// edgefm customize: selective upload + semantic distillation -> a versioned student artifact.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/provenance.h"
#include "customize/job.h"
#include "customize/select.h"
#include "data/split.h"
#include "models/edge.h"
#include "route/scores.h"

namespace edgefm::cli {
namespace {

struct CustomizeOptions {
  DataOptions data;
  FmOptions fm;
  customize::CustomizeParams params = customize::customize_default_params();
  std::string split_path;
  bool seen_only = false;
  size_t validation = 5000;
  std::string out = "models/student.pt";
  std::string json_path;
};

void run_customize(const CustomizeOptions& o) {
  models::configure_torch_threads();
  auto fm = o.fm.load();
  auto train = data::load_dataset(o.data.description(), data::Part::train, o.data.train_limit);
  if (o.validation >= train.size()) {
    fail_expected("--validation", "fewer images than the " + std::to_string(train.size()) +
                                      " training images", std::to_string(o.validation));
  }
  // The last `validation` training images are held out for the calibration profile.
  std::vector<size_t> candidate_index, validation_index;
  data::Split split;
  bool use_split = !o.split_path.empty() || o.seen_only;
  if (!o.split_path.empty()) split = data::load_split(o.split_path);
  if (use_split) data::check_split(split, static_cast<int>(train.class_names.size()));
  for (size_t i = 0; i < train.size(); ++i) {
    if (use_split && !split.is_seen(train.labels[i])) continue;
    (i + o.validation < train.size() ? candidate_index : validation_index).push_back(i);
  }
  std::vector<std::string> classes;
  for (size_t c = 0; c < train.class_names.size(); ++c) {
    if (!use_split || split.is_seen(static_cast<int>(c))) classes.push_back(train.class_names[c]);
  }
  auto candidates = train.subset(candidate_index);
  auto validation = train.subset(validation_index);
  std::fprintf(stderr, "[customize] %s: %zu candidate images, %zu for calibration, %zu classes%s\n",
               o.params.distill.arch.c_str(), candidates.size(), validation.size(), classes.size(),
               use_split ? (" (split " + split.name + ", seen classes only)").c_str() : "");
  // A fractional budget counts the whole (split's) training set, calibration images included.
  auto params = o.params;
  params.budget_base = candidate_index.size() + validation_index.size();
  auto report = customize::customize(fm, candidates, validation, classes, params, o.out);
  std::printf("student %s (%s): uploaded %zu of %zu training images (%.1f %%), %zu FM queries, "
              "validation accuracy edge %.2f %% / FM %.2f %%, %.1f s\n",
              o.out.c_str(), report.arch.c_str(), report.uploaded, report.budget_base,
              100.0 * report.uploaded / report.budget_base, report.fm_queries,
              100 * report.validation_edge_accuracy, 100 * report.validation_fm_accuracy,
              report.seconds);
  if (!o.json_path.empty()) {
    auto j = report.to_json();
    j["split"] = use_split ? split.name : "all";
    j["classes"] = classes;
    j["provenance"] = provenance();
    write_json_file(o.json_path, j);
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void add_customize_command(CLI::App& app) {
  auto o = std::make_shared<CustomizeOptions>();
  auto* c = app.add_subcommand(
      "customize",
      "Customize an edge model: select which unlabeled images to upload, let the FM embed and\n"
      "pseudo-label only those, distill MSE + lambda * InfoNCE into the student, fit its routing\n"
      "score and measure its calibration profile. Writes one versioned artifact.");
  add_data_options(*c, o->data);
  add_fm_options(*c, o->fm);
  auto& p = o->params;
  c->add_option("--arch", p.distill.arch, "Edge architecture (see `edgefm models`)")
      ->capture_default_str();
  c->add_option("--budget", p.budget, "Upload budget: a fraction (\"20%\", \"0.2\") or a count")
      ->capture_default_str();
  c->add_option("--strategy", p.strategy,
                "Upload selection: " + joined(customize::selection_strategy_names()))
      ->capture_default_str()
      ->check(CLI::IsMember(customize::selection_strategy_names()));
  c->add_option("--rounds", p.rounds,
                "Upload rounds: a random bootstrap first, then selection by the strategy with the "
                "previous round's student")
      ->capture_default_str()
      ->check(positive_number());
  c->add_option("--bootstrap-share", p.bootstrap_share, "Share of the budget spent in round 1")
      ->capture_default_str()
      ->check(number_in(0.0, 1.0));
  c->add_option("--initial-student", p.initial_student,
                "The edge's current student: ranks uploads from round 1 on");
  c->add_option("--warm-start", p.distill.warm_start,
                "Start from this student's weights (same architecture)");
  c->add_option("--epochs", p.distill.epochs, "Distillation epochs (last round)")->capture_default_str()
      ->check(positive_number());
  c->add_option("--batch-size", p.distill.batch_size, "Images per step")->capture_default_str()
      ->check(positive_number());
  c->add_option("--lr", p.distill.learning_rate, "Peak learning rate (AdamW, cosine)")->capture_default_str()
      ->check(positive_number());
  c->add_option("--lambda", p.distill.lambda, "Weight of the InfoNCE term")->capture_default_str();
  c->add_option("--tau", p.distill.temperature, "InfoNCE temperature")->capture_default_str()
      ->check(positive_number());
  c->add_option("--balance", p.distill.balance,
                "Class balance of the draws, an exponent in [0, 1]: a pseudo-class of n uploads "
                "weighs n^(1 - balance) (1: every class the same; 0: as uploaded)")
      ->capture_default_str()
      ->check(number_in(0.0, 1.0));
  c->add_option("--outliers", p.outlier_share,
                "Synthetic outliers per uploaded image (spliced/shuffled/blended uploads the FM "
                "embeds; the student imitates them with MSE only)")
      ->capture_default_str();
  c->add_option("--score", p.score, "Routing score shipped with the student: " + joined(route::score_names()))
      ->capture_default_str()
      ->check(CLI::IsMember(route::score_names()));
  c->add_option("--split", o->split_path,
                "Split JSON (configs/split-*.json): customize on its seen classes only");
  c->add_flag("--seen-only", o->seen_only, "Customize on the default split's seen classes {0..5}");
  c->add_option("--validation", o->validation,
                "Training images held out (the last N) for the calibration profile")
      ->capture_default_str();
  c->add_option("--version", p.version, "Version number written into the artifact")->capture_default_str()
      ->check(positive_number());
  c->add_option("--seed", p.seed, "Random seed")->capture_default_str();
  c->add_option("--out", o->out, "Student artifact to write")->capture_default_str();
  c->add_option("--json", o->json_path, "Write the customization report as JSON");
  c->callback([o] { run_customize(*o); });
}

}  // namespace edgefm::cli
