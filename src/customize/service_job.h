#pragma once
// The customization service's real job (cloud/customization.h runs it on its worker): embed
// and pseudo-label the device's uploads with the FM, split off a held-out part, measure the
// accuracy of each architecture that fits the device's budget, choose one with the
// accuracy-resource lookup table (arch_choice.h), distill it (warm start from the device's
// previous artifact when the architecture is unchanged), fit the routing score, measure the
// calibration profile on the held-out part and write the student artifact. Torch-free header.
//
// The held-out part has no human labels: the FM's pseudo-labels stand in, so the accuracy in
// the lookup table is agreement with the FM, and in the calibration profile fm_correct = 1 and
// edge_correct = (edge class == FM class). docs/customization.md says more.
#include <string>
#include <vector>

#include "cloud/customization.h"
#include "common/json_io.h"
#include "customize/arch_choice.h"
#include "customize/distill.h"
#include "models/foundation.h"

namespace edgefm::customize {

// A job request (the POSTed body), parsed and checked against the FM.
struct ServiceJobRequest {
  DeviceProfile profile;
  ResourceBudget budget;
  std::vector<std::string> classes;  // default: every class of the FM's pool
  DistillParams distill = distill_default_params();  // epochs, batch_size, ... of the final model
  int table_epochs = 2;    // brief distillation of each candidate for the lookup table
  double holdout = 0.2;    // share of the uploads held out (by content hash) for accuracy
  std::string score = "margin";
  json score_params = json::object();
  // Synthetic outliers per training upload (distill.h), embedded by the FM and imitated by
  // the student with the MSE term only (request field "outliers"; 0: none).
  double outliers = 0.0;

  // Throws Error naming the field on anything missing, unknown or out of range, on a class
  // the FM does not have and on an architecture the edge pool does not have.
  static ServiceJobRequest parse(const json& request, const models::FoundationModel& fm);
};

// The held-out share as the job splits it: a sample is held out when the first 8 hex digits
// of its SHA-256, read as a fraction of 2^32, fall below `holdout` (so a sample stays on the
// same side in every job). At least one sample lands on each side when there are two.
std::vector<bool> holdout_by_hash(const std::vector<std::string>& hashes, double holdout);

// The service's validator and runner for this FM.
cloud::JobValidator make_job_validator(models::FoundationModel fm);
cloud::JobRunner make_job_runner(models::FoundationModel fm);

}  // namespace edgefm::customize
