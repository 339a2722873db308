// End to end: `serve --tls-cert/--tls-key` with a certificate the test makes (openssl), and
// the real edge reaching it over https with --ca-cert; plain HTTP, an untrusted certificate and
// a wrong certificate file are refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <httplib.h>

#include "common/json_io.h"
#include "harness/process.h"
#include "support/fixtures.h"
#include "support/live.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

TEST(Tls, TheEdgeReachesAnHttpsCloudAndPlainHttpIsRefused) {
  const fs::path dir = fs::temp_directory_path() / ("edgefm-e2e-tls-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                         "-addext subjectAltName=IP:127.0.0.1 -keyout " + key + " -out " + cert +
                         " > " + (dir / "openssl.log").string() + " 2>&1")
                            .c_str()),
            0);
  const auto& models = testing::small_models();
  harness::ChildProcess serve(EDGEFM_BIN,
                              {"serve", "--fm", models.fm, "--port", "0", "--port-file",
                               (dir / "serve.port").string(), "--tls-cert", cert, "--tls-key", key},
                              (dir / "serve.log").string());
  const int port = testing::wait_for_port(serve, dir / "serve.port");
  EXPECT_NE(serve.log_tail().find("listening on https://"), std::string::npos) << serve.log_tail();

  auto edge = [&](const std::string& url, std::vector<std::string> extra, const std::string& tag) {
    std::vector<std::string> args = {"edge", "--student", models.student, "--server", url,
                                     "--policy", "cloud-only", "--samples", "20", "--rate", "0",
                                     "--require-cloud", "--quiet", "--json",
                                     (dir / (tag + ".json")).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    harness::ChildProcess p(EDGEFM_BIN, args, (dir / (tag + ".log")).string());
    const auto status = p.wait_for(std::chrono::seconds(120));
    return std::make_pair(status.value_or(-1), p.log_tail());
  };
  const std::string https = "https://127.0.0.1:" + std::to_string(port);
  auto [status, log] = edge(https, {"--ca-cert", cert}, "trusted");
  EXPECT_EQ(status, 0) << log;
  EXPECT_EQ(read_json_file(dir / "trusted.json").at("counts").at("cloud"), 20) << log;

  // Not trusted (the system's certificates do not include the test's): no cloud answer.
  std::tie(status, log) = edge(https, {}, "untrusted");
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("unreachable"), std::string::npos) << log;
  // Plain HTTP to the TLS port: refused.
  std::tie(status, log) = edge("http://127.0.0.1:" + std::to_string(port), {}, "plain");
  EXPECT_EQ(status, 1) << log;
  httplib::Client plain("127.0.0.1", port);
  plain.set_read_timeout(5, 0);
  EXPECT_FALSE(plain.Get("/v2/health/live"));
  // The service is still there for TLS clients.
  std::tie(status, log) = edge(https, {"--ca-cert", cert}, "again");
  EXPECT_EQ(status, 0) << log;

  // A key given as the certificate: one line, exit 1.
  harness::ChildProcess wrong(EDGEFM_BIN,
                              {"serve", "--fm", models.fm, "--port", "0", "--tls-cert", key,
                               "--tls-key", key},
                              (dir / "wrong.log").string());
  const auto wrong_status = wrong.wait_for(std::chrono::seconds(60));
  EXPECT_EQ(wrong_status.value_or(-1), 1) << wrong.log_tail();
  EXPECT_NE(wrong.log_tail().find("expected a PEM certificate"), std::string::npos)
      << wrong.log_tail();
  EXPECT_EQ(serve.stop(std::chrono::seconds(30)), 0) << serve.log_tail();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm
