// The deployment files (Dockerfile, deploy/) against each other and against the real
// program: the port the image exposes is the one every manifest's container, probe, Service
// and Ingress names; every `edgefm serve` command line they hold is started here (paths and
// secrets swapped for test ones) and the probe paths they name must answer 200.
#include <gtest/gtest.h>
#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_io.h"
#include "harness/process.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

const fs::path kSource = EDGEFM_SOURCE_DIR;

// ---- the Dockerfile ----------------------------------------------------------------------

struct Dockerfile {
  std::vector<std::string> stages;  // FROM lines, in order
  // Instructions of the last stage (the image that runs): keyword -> arguments as written.
  std::multimap<std::string, std::string> runtime;
  std::vector<std::string> entrypoint, cmd;  // exec form
  std::string healthcheck_url;               // the http:// argument of HEALTHCHECK CMD
};

std::vector<std::string> exec_form(const std::string& text, const std::string& what) {
  json array = json::parse(text, nullptr, false);
  if (!array.is_array()) throw Error(what + ": expected the exec form [\"...\"], got " + text);
  return array.get<std::vector<std::string>>();
}

// Instructions with their continuation lines joined; comments and blank lines dropped.
Dockerfile read_dockerfile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path.string());
  std::vector<std::string> instructions;
  std::string line, pending;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    const bool continued = line.back() == '\\';
    if (continued) line.pop_back();
    pending += line + " ";
    if (!continued) {
      instructions.push_back(pending);
      pending.clear();
    }
  }
  Dockerfile d;
  for (const std::string& instruction : instructions) {
    std::istringstream words(instruction);
    std::string keyword;
    words >> keyword;
    std::string rest;
    std::getline(words, rest);
    rest = std::regex_replace(rest, std::regex(R"(^\s+|\s+$)"), "");
    std::transform(keyword.begin(), keyword.end(), keyword.begin(), ::toupper);
    if (keyword == "FROM") {
      d.stages.push_back(rest);
      d.runtime.clear();
      continue;
    }
    d.runtime.emplace(keyword, rest);
  }
  auto last = [&](const std::string& keyword) -> std::string {
    auto [begin, end] = d.runtime.equal_range(keyword);
    return begin == end ? "" : std::prev(end)->second;
  };
  d.entrypoint = exec_form(last("ENTRYPOINT"), "ENTRYPOINT");
  d.cmd = exec_form(last("CMD"), "CMD");
  std::smatch m;
  const std::string health = last("HEALTHCHECK");
  if (std::regex_search(health, m, std::regex(R"(\bCMD\s+(\[.*\]))"))) {
    for (const std::string& arg : exec_form(m[1], "HEALTHCHECK CMD")) {
      if (arg.rfind("http://", 0) == 0) d.healthcheck_url = arg;
    }
  }
  return d;
}

struct Url {
  int port = 0;
  std::string path;
};

Url parse_url(const std::string& url) {
  std::smatch m;
  if (!std::regex_match(url, m, std::regex(R"(http://[^/:]+:(\d+)(/.*))"))) {
    throw Error("expected http://HOST:PORT/PATH, got '" + url + "'");
  }
  return {std::stoi(m[1]), m[2]};
}

// The value after `option` in a command line; empty when it is absent.
std::string option_value(const std::vector<std::string>& args, const std::string& option) {
  auto it = std::find(args.begin(), args.end(), option);
  return it == args.end() || it + 1 == args.end() ? "" : *(it + 1);
}

// ---- the manifests -------------------------------------------------------------------------

struct Probe {
  std::string kind;  // livenessProbe, readinessProbe
  std::string path;
  int port = 0;
};

// One container that runs `edgefm serve`.
struct ServeContainer {
  std::string where;  // "deploy/kserve/servingruntime.yaml ServingRuntime/edgefm"
  YAML::Node workload;
  YAML::Node pod;  // the pod spec (containers, volumes)
  YAML::Node container;
  std::vector<std::string> args;
  int container_port = 0;
  std::vector<Probe> probes;

  std::string kind() const { return workload["kind"].as<std::string>(); }
  // The volume mounted over `path` in this container, if one is.
  std::optional<YAML::Node> volume_at(const std::string& path) const {
    for (const YAML::Node& mount : container["volumeMounts"]) {
      const fs::path root = mount["mountPath"].as<std::string>();
      const fs::path rel = fs::path(path).lexically_relative(root);
      if (rel.empty() || *rel.begin() == "..") continue;
      for (const YAML::Node& v : pod["volumes"]) {
        if (v["name"].as<std::string>() == mount["name"].as<std::string>()) return v;
      }
    }
    return std::nullopt;
  }
};

struct Manifests {
  std::vector<YAML::Node> documents;
  std::vector<ServeContainer> serves;

  std::vector<YAML::Node> of_kind(const std::string& kind) const {
    std::vector<YAML::Node> out;
    for (const YAML::Node& d : documents) {
      if (d["kind"].as<std::string>() == kind) out.push_back(d);
    }
    return out;
  }
};

int port_number(const YAML::Node& port, const YAML::Node& container) {
  if (port.IsScalar() && std::regex_match(port.as<std::string>(), std::regex(R"(\d+)"))) {
    return port.as<int>();
  }
  for (const YAML::Node& p : container["ports"]) {  // a named port
    if (p["name"] && p["name"].as<std::string>() == port.as<std::string>()) {
      return p["containerPort"].as<int>();
    }
  }
  throw Error("port '" + port.as<std::string>() + "' names no port of the container");
}

Manifests read_manifests(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string ext = entry.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  Manifests m;
  for (const fs::path& file : files) {
    for (const YAML::Node& d : YAML::LoadAllFromFile(file.string())) {
      if (!d.IsMap()) continue;
      const std::string where = fs::relative(file, kSource).string() + " " +
                                d["kind"].as<std::string>() + "/" +
                                d["metadata"]["name"].as<std::string>();
      m.documents.push_back(d);
      const std::string kind = d["kind"].as<std::string>();
      const bool runtime = kind == "ServingRuntime";
      if (!runtime && kind != "Deployment" && kind != "StatefulSet") continue;
      const YAML::Node pod = runtime ? d["spec"] : d["spec"]["template"]["spec"];
      for (const YAML::Node& c : pod["containers"]) {
        if (!c["args"] || c["args"][0].as<std::string>() != "serve") continue;
        ServeContainer s;
        s.where = where;
        s.workload = d;
        s.pod = pod;
        s.container = c;
        s.args = c["args"].as<std::vector<std::string>>();
        if (c["ports"] && c["ports"].size() == 1) {
          s.container_port = c["ports"][0]["containerPort"].as<int>();
        }
        for (const char* kind_of_probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
          const YAML::Node probe = c[kind_of_probe];
          if (!probe) continue;
          s.probes.push_back({kind_of_probe, probe["httpGet"]["path"].as<std::string>(),
                              port_number(probe["httpGet"]["port"], c)});
        }
        m.serves.push_back(s);
      }
    }
  }
  return m;
}

const Dockerfile& dockerfile() {
  static const Dockerfile d = read_dockerfile(kSource / "Dockerfile");
  return d;
}

const Manifests& manifests() {
  static const Manifests m = read_manifests(kSource / "deploy");
  return m;
}

int exposed_port() {
  auto [begin, end] = dockerfile().runtime.equal_range("EXPOSE");
  if (std::distance(begin, end) != 1) return 0;
  return std::stoi(begin->second);  // "8000" or "8000/tcp"
}

// ---- static checks -------------------------------------------------------------------------

TEST(Deploy, TheImageRunsServeAsNonRootOnTheExposedPort) {
  const Dockerfile& d = dockerfile();
  EXPECT_GE(d.stages.size(), 2u) << "a build stage and a runtime stage";
  for (const std::string& from : d.stages) {
    EXPECT_NE(from.find("bookworm"), std::string::npos) << "not Debian 12: " << from;
  }

  auto [user, no_user] = d.runtime.equal_range("USER");
  ASSERT_NE(user, no_user) << "the runtime stage sets no USER: it would run as root";
  const std::string name = std::prev(no_user)->second;
  const std::string uid = name.substr(0, name.find(':'));
  EXPECT_NE(uid, "root");
  EXPECT_NE(uid, "0");

  const int port = exposed_port();
  ASSERT_GT(port, 0) << "one EXPOSE in the runtime stage";
  EXPECT_EQ(d.entrypoint, std::vector<std::string>{"edgefm"});
  ASSERT_FALSE(d.cmd.empty());
  EXPECT_EQ(d.cmd[0], "serve");
  EXPECT_EQ(option_value(d.cmd, "--port"), std::to_string(port));
  EXPECT_EQ(option_value(d.cmd, "--host"), "0.0.0.0");
  ASSERT_FALSE(d.healthcheck_url.empty()) << "a HEALTHCHECK that asks an http:// URL";
  const Url health = parse_url(d.healthcheck_url);
  EXPECT_EQ(health.port, port);
  EXPECT_EQ(health.path.rfind("/v2/health/", 0), 0u) << health.path;
}

TEST(Deploy, EveryServeContainerListensOnTheImagePortWithOipProbes) {
  const Manifests& m = manifests();
  ASSERT_FALSE(m.serves.empty()) << "no container running `edgefm serve` under deploy/";
  ASSERT_FALSE(m.of_kind("ServingRuntime").empty());
  const int port = exposed_port();
  for (const ServeContainer& s : m.serves) {
    SCOPED_TRACE(s.where);
    EXPECT_EQ(s.container_port, port);
    EXPECT_EQ(option_value(s.args, "--port"), std::to_string(port));
    EXPECT_EQ(option_value(s.args, "--host"), "0.0.0.0");
    std::map<std::string, std::string> paths;
    for (const Probe& p : s.probes) {
      EXPECT_EQ(p.port, port) << p.kind;
      paths[p.kind] = p.path;
    }
    EXPECT_EQ(paths["livenessProbe"], "/v2/health/live");
    EXPECT_EQ(paths["readinessProbe"], "/v2/health/ready");
    // A $(VAR) in the arguments is expanded by Kubernetes from the container's env.
    std::set<std::string> env;
    for (const YAML::Node& e : s.container["env"]) env.insert(e["name"].as<std::string>());
    for (const std::string& arg : s.args) {
      std::smatch var;
      if (std::regex_match(arg, var, std::regex(R"(\$\((\w+)\))"))) {
        EXPECT_TRUE(env.count(var[1])) << arg << " names no env variable of the container";
      }
    }
    const YAML::Node annotations = s.kind() == "ServingRuntime"
                                       ? s.pod["annotations"]
                                       : s.workload["spec"]["template"]["metadata"]["annotations"];
    for (const char* key : {"prometheus.kserve.io/port", "prometheus.io/port"}) {
      if (annotations && annotations[key]) {
        EXPECT_EQ(annotations[key].as<int>(), port) << key;
      }
    }
  }
}

TEST(Deploy, OnlyTheSingleCustomizationReplicaKeepsState) {
  bool customization_found = false;
  for (const ServeContainer& s : manifests().serves) {
    SCOPED_TRACE(s.where);
    const std::string fm = option_value(s.args, "--fm");
    if (s.kind() == "ServingRuntime") {
      // KServe's storage initializer puts the InferenceService's storageUri there.
      EXPECT_EQ(fm.rfind("/mnt/models/", 0), 0u) << fm;
      EXPECT_EQ(option_value(s.args, "--customization-dir"), "")
          << "KServe scales this runtime out";
      continue;
    }
    EXPECT_TRUE(s.volume_at(fm).has_value()) << "--fm " << fm << " is on no mounted volume";
    const std::string state = option_value(s.args, "--customization-dir");
    if (state.empty()) continue;
    customization_found = true;
    const auto volume = s.volume_at(state);
    EXPECT_TRUE(volume && (*volume)["persistentVolumeClaim"])
        << "--customization-dir " << state << " is on no persistent volume";
    EXPECT_EQ(s.kind(), "Deployment");
    EXPECT_EQ(s.workload["spec"]["replicas"].as<int>(), 1);
    EXPECT_EQ(s.workload["spec"]["strategy"]["type"].as<std::string>(), "Recreate")
        << "a rolling update would run two services on one folder";
    const std::string key = option_value(s.args, "--artifact-key-file");
    if (!key.empty()) {
      EXPECT_TRUE(s.volume_at(key).has_value()) << "--artifact-key-file " << key;
    }
  }
  EXPECT_TRUE(customization_found) << "no manifest runs the customization service";
}

TEST(Deploy, TheInferenceServiceNamesTheRuntimeAndItsFormat) {
  const Manifests& m = manifests();
  const auto services = m.of_kind("InferenceService");
  ASSERT_FALSE(services.empty());
  for (const YAML::Node& isvc : services) {
    const YAML::Node model = isvc["spec"]["predictor"]["model"];
    ASSERT_TRUE(model) << "spec.predictor.model";
    EXPECT_TRUE(model["storageUri"]);
    const std::string runtime = model["runtime"].as<std::string>();
    const auto runtimes = m.of_kind("ServingRuntime");
    auto found = std::find_if(runtimes.begin(), runtimes.end(), [&](const YAML::Node& r) {
      return r["metadata"]["name"].as<std::string>() == runtime;
    });
    ASSERT_NE(found, runtimes.end()) << "no ServingRuntime named " << runtime;
    const YAML::Node spec = (*found)["spec"];
    const std::string format = model["modelFormat"]["name"].as<std::string>();
    bool format_supported = false;
    for (const YAML::Node& f : spec["supportedModelFormats"]) {
      format_supported |= f["name"].as<std::string>() == format;
    }
    EXPECT_TRUE(format_supported) << "the runtime does not list the model format " << format;
    const auto protocols = spec["protocolVersions"].as<std::vector<std::string>>();
    EXPECT_NE(std::find(protocols.begin(), protocols.end(), "v2"), protocols.end());
    EXPECT_EQ(model["protocolVersion"].as<std::string>(), "v2");
  }
}

TEST(Deploy, ServicesAndTheIngressReachTheServePort) {
  const Manifests& m = manifests();
  // Service name -> the serve container its selector picks.
  std::map<std::string, const ServeContainer*> backends;
  for (const YAML::Node& service : m.of_kind("Service")) {
    const std::string name = service["metadata"]["name"].as<std::string>();
    SCOPED_TRACE("Service/" + name);
    const auto selector = service["spec"]["selector"].as<std::map<std::string, std::string>>();
    const ServeContainer* picked = nullptr;
    for (const ServeContainer& s : m.serves) {
      if (s.kind() == "ServingRuntime") continue;
      const auto labels = s.workload["spec"]["template"]["metadata"]["labels"]
                              .as<std::map<std::string, std::string>>();
      const bool matches = std::all_of(selector.begin(), selector.end(), [&](const auto& kv) {
        auto it = labels.find(kv.first);
        return it != labels.end() && it->second == kv.second;
      });
      if (!matches) continue;
      EXPECT_EQ(picked, nullptr) << "the selector picks two workloads";
      picked = &s;
    }
    ASSERT_NE(picked, nullptr) << "the selector picks no serve workload";
    backends[name] = picked;
    for (const YAML::Node& port : service["spec"]["ports"]) {
      EXPECT_EQ(port_number(port["targetPort"], picked->container), picked->container_port);
    }
  }
  for (const YAML::Node& ingress : m.of_kind("Ingress")) {
    bool customization_routed = false;
    for (const YAML::Node& rule : ingress["spec"]["rules"]) {
      for (const YAML::Node& path : rule["http"]["paths"]) {
        const YAML::Node backend = path["backend"]["service"];
        const std::string name = backend["name"].as<std::string>();
        ASSERT_TRUE(backends.count(name)) << "the Ingress names no Service of deploy/: " << name;
        const ServeContainer& target = *backends[name];
        bool port_found = false;
        for (const YAML::Node& service : m.of_kind("Service")) {
          if (service["metadata"]["name"].as<std::string>() != name) continue;
          for (const YAML::Node& port : service["spec"]["ports"]) {
            port_found |= port["port"].as<int>() == backend["port"]["number"].as<int>();
          }
        }
        EXPECT_TRUE(port_found) << name << " has no port " << backend["port"]["number"].as<int>();
        if (path["path"].as<std::string>() == "/v2/customization") {
          customization_routed = true;
          EXPECT_NE(option_value(target.args, "--customization-dir"), "") << name;
        }
      }
    }
    EXPECT_TRUE(customization_routed) << "the Ingress sends /v2/customization nowhere";
  }
}

// ---- against the real program ----------------------------------------------------------------

// The command line as the container would run it, with this machine's files and a free port.
std::vector<std::string> local_arguments(const std::vector<std::string>& args, const fs::path& dir,
                                         const fs::path& port_file, const std::string& token) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    out.push_back(args[i]);
    if (i + 1 == args.size()) break;
    const std::string& option = args[i];
    std::string value;
    if (option == "--fm") value = testing::small_models().fm;
    else if (option == "--host") value = "127.0.0.1";
    else if (option == "--port") value = "0";
    else if (option == "--token") value = token;
    else if (option == "--customization-dir") value = (dir / "customization").string();
    else if (option == "--artifact-key-file") {
      value = (dir / "artifact-key").string();
      std::ofstream(value) << "deploy-test-artifact-signing-key\n";
    }
    if (value.empty()) continue;
    out.push_back(value);
    ++i;
  }
  out.push_back("--port-file");
  out.push_back(port_file.string());
  return out;
}

TEST(Deploy, EveryServeCommandLineStartsAndAnswersItsProbes) {
  struct Server {
    std::string where;
    std::vector<std::string> paths;  // what the probes ask, without a token
    bool token_required = false;
    fs::path port_file;
    std::unique_ptr<harness::ChildProcess> child;
  };
  testing::TempDir scratch("e2e", "deploy");
  const std::string token = "deploy-test";
  std::vector<Server> servers;
  auto start = [&](const std::string& where, const std::vector<std::string>& args,
                   std::vector<std::string> paths) {
    const fs::path dir = scratch.path / std::to_string(servers.size());
    fs::create_directories(dir);
    Server s{where, std::move(paths), !option_value(args, "--token").empty(), dir / "port",
             nullptr};
    s.child = std::make_unique<harness::ChildProcess>(
        EDGEFM_BIN, local_arguments(args, dir, s.port_file, token), (dir / "serve.log").string());
    servers.push_back(std::move(s));
  };
  const Dockerfile& d = dockerfile();
  start("Dockerfile CMD", d.cmd, {parse_url(d.healthcheck_url).path});
  for (const ServeContainer& c : manifests().serves) {
    std::vector<std::string> paths;
    for (const Probe& p : c.probes) paths.push_back(p.path);
    start(c.where, c.args, paths);
  }
  for (Server& s : servers) {
    SCOPED_TRACE(s.where);
    int port = 0;
    try {
      port = harness::wait_for_port_file(*s.child, s.port_file, std::chrono::seconds(60));
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(10, 0);
    s.paths.push_back("/metrics");
    for (const std::string& path : s.paths) {
      auto res = client.Get(path);
      ASSERT_TRUE(res) << path << ": " << httplib::to_string(res.error());
      EXPECT_EQ(res->status, 200) << path << ": " << res->body;
    }
    // A token in the arguments guards the model endpoints, and only them.
    const std::string ready = "/v2/models/fm/ready";
    if (s.token_required) {
      auto refused = client.Get(ready);
      ASSERT_TRUE(refused);
      EXPECT_EQ(refused->status, 401);
      client.set_bearer_token_auth(token);
    }
    auto res = client.Get(ready);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
  }
}

}  // namespace
}  // namespace edgefm
