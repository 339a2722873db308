// edgefm serve: the cloud service, the FM behind the Open Inference Protocol.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cloud/tls_front.h"
#include "cli/options.h"
#include "cloud/customization.h"
#include "cloud/server.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/threads.h"
#include "customize/service_job.h"
#include "models/edge.h"

namespace edgefm::cli {
namespace {

struct ServeCommandOptions {
  FmOptions fm;
  cloud::ServerOptions server = cloud::server_default_options();
  double max_request_mb = 16;
  std::string port_file;
  std::string json_path;
  std::string customization_dir;  // empty: no customization service
  size_t customization_max_jobs = 16;
  size_t job_workers = 1;
  size_t max_samples_per_device = 0;
  std::string devices;  // the device registry file; empty: one shared token
  std::string artifact_key_file;
  std::string tls_cert, tls_key;  // both: serve HTTPS only (cloud/tls_front.h)
};

volatile std::sig_atomic_t g_serve_stop_signal = 0;

void on_serve_stop_signal(int signal) { g_serve_stop_signal = signal; }

void run_serve(ServeCommandOptions& o) {
  if (!(o.max_request_mb > 0)) {
    fail_expected("--max-request-mb", "a positive size", std::to_string(o.max_request_mb));
  }
  o.server.max_request_bytes = static_cast<size_t>(o.max_request_mb * 1024 * 1024);
  if (!o.devices.empty() && o.customization_dir.empty()) {
    throw UsageError("serve: --devices needs --customization-dir (the registry gives devices "
                     "tokens for the customization service)");
  }

  g_serve_stop_signal = 0;
  struct sigaction action{}, old_int{}, old_term{};
  action.sa_handler = on_serve_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  models::configure_torch_threads();
  models::FoundationModel fm = o.fm.load(o.server.device);
  const auto started = std::chrono::steady_clock::now();
  // The customization service outlives the server that routes to it.
  std::unique_ptr<cloud::CustomizationService> customization;
  std::vector<cloud::ServerExtension> extensions;
  if (!o.customization_dir.empty()) {
    cloud::CustomizationOptions c = cloud::customization_default_options();
    c.root = o.customization_dir;
    c.sample_shape = fm.image->input_shape();
    c.max_queued_jobs = o.customization_max_jobs;
    c.job_workers = o.job_workers;
    c.max_samples_per_device = o.max_samples_per_device;
    c.devices = o.devices;
    c.admin_token = o.server.token;
    c.artifact_key = read_artifact_key(o.artifact_key_file);
    customization = std::make_unique<cloud::CustomizationService>(
        c, customize::make_job_runner(fm), customize::make_job_validator(fm));
    extensions.push_back(customization->extension());
    o.server.accept_token = customization->token_check();
  }
  // With TLS the HTTP server listens on loopback only, behind the terminator.
  const bool tls = !o.tls_cert.empty();
  const std::string public_host = o.server.host;
  const int public_port = o.server.port;
  if (tls) {
    o.server.host = "127.0.0.1";
    o.server.port = 0;
  }
  cloud::CloudServer server(fm, o.server, std::move(extensions));
  std::unique_ptr<cloud::TlsFront> tls_front;
  if (tls) {
    cloud::TlsFrontOptions t;
    t.host = public_host;
    t.port = public_port;
    t.backend_port = server.port();
    t.cert_file = o.tls_cert;
    t.key_file = o.tls_key;
    tls_front = std::make_unique<cloud::TlsFront>(t);
  }
  const int port = tls ? tls_front->port() : server.port();
  const std::string url = tls ? "https://" + public_host + ":" + std::to_string(port) : server.url();
  if (!o.port_file.empty()) write_text_file(o.port_file, std::to_string(port) + "\n");
  std::fprintf(stderr,
               "[serve] listening on %s: models '%s' (%s, %s -> %d, %zu classes) and '%s'; "
               "max batch %d, max queue delay %lld us, %d threads, device %s, auth %s\n",
               url.c_str(), o.server.image_model.c_str(), fm.version.c_str(),
               fm.spec().describe().c_str(), fm.image->embedding_dim(),
               fm.pool.size(), o.server.text_model.c_str(), o.server.max_batch,
               static_cast<long long>(o.server.max_queue_delay_us), o.server.threads,
               o.server.device.c_str(),
               !o.devices.empty() ? "device tokens" : o.server.token.empty() ? "off" : "bearer token");
  if (customization) {
    std::fprintf(stderr,
                 "[serve] customization service on /v2/customization (folder %s, %zu job "
                 "worker%s, devices %s)\n",
                 o.customization_dir.c_str(), o.job_workers, o.job_workers == 1 ? "" : "s",
                 o.devices.empty() ? "share one token" : ("from " + o.devices).c_str());
  }
  std::fflush(stderr);

  while (g_serve_stop_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::fprintf(stderr, "[serve] signal %d: finishing requests in flight\n",
               static_cast<int>(g_serve_stop_signal));
  std::fflush(stderr);
  if (tls_front) tls_front->stop();
  server.stop();
  if (customization) customization->stop();  // a running job stops at its next step
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  const auto stats = server.batcher_stats();
  const double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr,
               "[serve] stopped after %.1f s: %lld image requests, %lld images in %lld batches "
               "(mean %.2f, max %lld), mean queue wait %.0f us\n",
               uptime, static_cast<long long>(stats.requests), static_cast<long long>(stats.rows),
               static_cast<long long>(stats.batches), stats.mean_batch_rows(),
               static_cast<long long>(stats.max_batch_rows), stats.mean_queue_us());
  if (!o.json_path.empty()) {
    write_json_file(o.json_path, {{"url", server.url()},
                                  {"fm_version", fm.version},
                                  {"device", o.server.device},
                                  {"max_batch", o.server.max_batch},
                                  {"max_queue_delay_us", o.server.max_queue_delay_us},
                                  {"uptime_s", uptime},
                                  {"image_requests", stats.requests},
                                  {"images", stats.rows},
                                  {"batches", stats.batches},
                                  {"mean_batch_rows", stats.mean_batch_rows()},
                                  {"max_batch_rows", stats.max_batch_rows},
                                  {"batches_by_rows", stats.batches_by_rows},
                                  {"mean_queue_us", stats.mean_queue_us()},
                                  {"max_queue_us", stats.queue_us_max}});
  }
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto options = std::make_shared<ServeCommandOptions>();
  options->server.port = 8000;
  options->server.threads = std::max(64, 4 * hardware_threads());
  auto& s = options->server;
  CLI::App* command = app.add_subcommand(
      "serve",
      "Serve the FM over HTTP with the Open Inference Protocol (KServe v2; Triton's\n"
      "binary_tensor_data extension): model 'fm' maps images to embedding, nearest class and\n"
      "margin, model 'text' maps class names or prompts to embeddings and lists the classes.\n"
      "Concurrent image requests are batched dynamically. Runs until SIGINT/SIGTERM, then\n"
      "finishes the requests in flight. Endpoints, tensors and metrics: docs/cloud.md.");
  add_fm_options(*command, options->fm);
  command->add_option("--host", s.host, "address to listen on (0.0.0.0: every interface)")
      ->capture_default_str();
  command->add_option("--port", s.port, "TCP port; 0 picks a free one (see --port-file)")
      ->capture_default_str()
      ->check(number_in(0, 65535));
  command->add_option("--token", s.token,
                      "require 'Authorization: Bearer <token>' on every /v2 endpoint but health "
                      "(default: no authentication); with --devices it is the admin token, "
                      "which reaches every device");
  command->add_option("--max-batch", s.max_batch,
                      "most images per FM call when batching requests together; 1 turns "
                      "batching off")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--max-queue-delay-us", s.max_queue_delay_us,
                      "longest time a request waits for others to batch with, in microseconds")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--max-request-mb", options->max_request_mb,
                      "largest request body accepted, in MiB; larger ones are answered 413")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--threads", s.threads,
                      "HTTP worker threads: the number of client connections served at once "
                      "(default: max(64, 4 x cores))")
      ->capture_default_str()
      ->check(positive_number());
  // Connection limits and timeouts of the HTTP front (cloud/http_front.h), all positive.
  auto add_limit = [command](const std::string& name, auto& value, const std::string& help) {
    command->add_option(name, value, help)->capture_default_str()->check(positive_number());
  };
  add_limit("--max-connections", s.max_connections,
            "open client connections at most; more are answered 503 and closed");
  add_limit("--max-queued-requests", s.max_queued_requests,
            "complete requests that may wait for a free worker; more are answered 503 with "
            "Retry-After");
  add_limit("--header-timeout-s", s.header_timeout_s,
            "seconds a request line and headers may take to arrive; slower ones are answered "
            "408 (slow clients hold no worker meanwhile)");
  add_limit("--keep-alive-timeout-s", s.keep_alive_timeout_s,
            "seconds an idle keep-alive connection stays open");
  add_limit("--io-timeout-s", s.io_timeout_s,
            "seconds each read or write of a request being served may wait");
  add_limit("--request-timeout-s", s.request_timeout_s,
            "seconds reading one request body may take in all");
  command->add_option("--batch-workers", s.batch_workers,
                      "threads calling the FM with batches (1 keeps one batch in the model at a "
                      "time)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--device", s.device,
                      "where the FM runs: cpu, or cuda when the linked LibTorch has CUDA")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  command->add_option("--customization-dir", options->customization_dir,
                      "serve the customization service (/v2/customization: sample upload, "
                      "jobs, versioned artifacts; docs/customization.md) keeping its samples, "
                      "jobs and artifacts in this folder (default: off)");
  command->add_option("--artifact-key-file", options->artifact_key_file,
                      "sign every published artifact's metadata with HMAC-SHA256 under the secret "
                      "in this file; edges given the same file install only signed artifacts "
                      "(docs/customization.md)");
  command->add_option("--customization-max-jobs", options->customization_max_jobs,
                      "customization jobs that may wait at once; more are answered 429")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--devices", options->devices,
                      "the device registry (`edgefm devices add`): each device's own token "
                      "reaches only its samples, jobs and artifacts (default: every token "
                      "reaches every device; docs/customization.md)");
  command->add_option("--job-workers", options->job_workers,
                      "customization jobs that run at once, taken round robin across devices "
                      "(never two of one device)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--max-samples-per-device", options->max_samples_per_device,
                      "samples a device keeps on the service; beyond it the oldest are removed "
                      "(0: no limit)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--port-file", options->port_file,
                      "write the listening port to this file once listening (for scripts "
                      "using --port 0)");
  command->add_option("--json", options->json_path,
                      "on exit, write batching totals (image_requests, images, batches, "
                      "mean_batch_rows, mean_queue_us, ...) to this JSON file");
  CLI::Option* cert =
      command->add_option("--tls-cert", options->tls_cert,
                          "serve HTTPS only, with this PEM certificate (chain); plain HTTP is "
                          "refused (docs/deploy.md)")
          ->check(CLI::ExistingFile);
  CLI::Option* key = command->add_option("--tls-key", options->tls_key,
                                         "the PEM private key of --tls-cert")
                         ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  add_config_option(*command);
  command->callback([options] { run_serve(*options); });
}

}  // namespace edgefm::cli
