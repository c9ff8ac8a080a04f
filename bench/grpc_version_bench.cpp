// CRI gRPC benchmark: N concurrent clients x M Version calls against monocri and, in the same
// run, against a peer CRI runtime (containerd from Debian, whose CRI plugin is grpc-go), through
// the same client. Prints latency percentiles, calls/s and the daemons' idle and under-load RSS
// side by side, with ratios: the machine is noisy, the ratio less so.
//
//   bench-grpc-version [--clients 16] [--calls 5000] [--no-peer]
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <csignal>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcClient.h"
#include "loop/Loop.h"
#include "loop/Timer.h"

namespace fs = std::filesystem;
namespace v1 = runtime::v1;
using namespace monocri;

namespace {

struct Daemon {
  std::string name;
  std::string socket;
  pid_t pid = -1;
  fs::path dir;
};

struct Result {
  double idleRssMiB = 0;
  double loadRssMiB = 0;
  double callsPerSecond = 0;
  double p50us = 0, p90us = 0, p99us = 0, p999us = 0, maxus = 0;
  uint64_t errors = 0;
};

double rssMiB(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* out = std::fopen(log.c_str(), "w");
    if (out) {
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// One Version call with the same client the load uses; true if it answered.
bool versionOk(const std::string& socket) {
  loop::Loop loop;
  bool ok = false;
  auto client = grpc::GrpcClient::connect(loop, socket);
  client->unary<v1::VersionRequest, v1::VersionResponse>(
      "/runtime.v1.RuntimeService/Version", v1::VersionRequest(),
      grpc::CallOptions{std::chrono::seconds(2), false},
      [&](const grpc::Status& status, v1::VersionResponse&&) {
        ok = status.isOk();
        client->close();
      });
  loop.run();
  return ok;
}

bool waitReady(const Daemon& daemon) {
  for (int i = 0; i < 300; ++i) {
    if (waitpid(daemon.pid, nullptr, WNOHANG) == daemon.pid) return false;
    if (fs::exists(daemon.socket) && versionOk(daemon.socket)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void stop(Daemon& daemon) {
  if (daemon.pid <= 0) return;
  kill(daemon.pid, SIGTERM);
  for (int i = 0; i < 200 && waitpid(daemon.pid, nullptr, WNOHANG) != daemon.pid; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(daemon.pid, SIGKILL);
  waitpid(daemon.pid, nullptr, 0);
  daemon.pid = -1;
  std::error_code ec;
  fs::remove_all(daemon.dir, ec);
}

std::optional<Daemon> startMonocri(const fs::path& binDir) {
  Daemon d{"monocri", "", -1,
           fs::temp_directory_path() / fmt::format("bench-monocri-{}", getpid())};
  fs::create_directories(d.dir);
  d.socket = (d.dir / "run/monocri.sock").string();
  d.pid = spawn({(binDir / "monocri").string(), "--root", (d.dir / "root").string(), "--run-root",
                 (d.dir / "run").string(), "--log-level", "warn"},
                d.dir / "log");
  if (!waitReady(d)) {
    stop(d);
    return std::nullopt;
  }
  return d;
}

// containerd with its state in a temp dir, in a private mount namespace of its own.
std::optional<Daemon> startContainerd() {
  if (std::system("command -v containerd >/dev/null 2>&1") != 0) return std::nullopt;
  Daemon d{"containerd", "", -1,
           fs::temp_directory_path() / fmt::format("bench-containerd-{}", getpid())};
  fs::create_directories(d.dir);
  d.socket = (d.dir / "containerd.sock").string();
  std::ofstream(d.dir / "config.toml") << fmt::format(
      "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n"
      "[grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n"
      "[debug]\n  level = \"error\"\n",
      d.dir.string(), d.socket);
  std::string version;
  if (FILE* p = popen("containerd --version 2>/dev/null", "r")) {
    char buf[256] = {};
    if (std::fgets(buf, sizeof(buf), p)) version = buf;
    pclose(p);
  }
  std::string number = version.substr(0, version.find_last_not_of("\n") + 1);
  if (auto pos = number.find(" 1."); pos != std::string::npos) number = number.substr(pos + 1);
  d.name = "containerd " + number.substr(0, number.find(' '));
  d.pid = spawn({"unshare", "--mount", "--propagation", "private", "containerd", "--config",
                 (d.dir / "config.toml").string()},
                d.dir / "log");
  if (!waitReady(d)) {
    stop(d);
    return std::nullopt;
  }
  return d;
}

double percentile(std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return static_cast<double>(sorted[index]) / 1000.0;
}

Result measure(const Daemon& daemon, int clients, int calls, int warmup) {
  Result result;
  std::this_thread::sleep_for(std::chrono::seconds(2));  // settle after start and readiness
  result.idleRssMiB = rssMiB(daemon.pid);

  loop::Loop loop;
  std::vector<std::unique_ptr<grpc::GrpcClient>> connections;
  std::vector<uint64_t> latencies;
  latencies.reserve(static_cast<size_t>(clients) * calls);
  int finishedClients = 0;
  uint64_t loadStart = 0;
  int warmedUp = 0;
  v1::VersionRequest request;
  request.set_version("v1");

  auto sampler = loop::Timer::create(loop);
  sampler->start(20, 20,
                 [&] { result.loadRssMiB = std::max(result.loadRssMiB, rssMiB(daemon.pid)); });

  // Each client: `warmup` calls, then `calls` timed ones, one at a time (closed loop).
  std::function<void(grpc::GrpcClient&, int)> next = [&](grpc::GrpcClient& client, int done) {
    if (done == warmup + calls) {
      if (++finishedClients == clients) {
        sampler->stop();
        for (auto& c : connections)
          c->close();
      }
      return;
    }
    const uint64_t start = uv_hrtime();
    client.unary<v1::VersionRequest, v1::VersionResponse>(
        "/runtime.v1.RuntimeService/Version", request,
        grpc::CallOptions{std::chrono::seconds(10), false},
        [&, start, done, c = &client](const grpc::Status& status, v1::VersionResponse&&) {
          if (!status.isOk()) ++result.errors;
          if (done == warmup - 1 && ++warmedUp == clients) loadStart = uv_hrtime();
          if (done >= warmup) latencies.push_back(uv_hrtime() - start);
          loop.defer([&, c, done] { next(*c, done + 1); });
        });
  };
  for (int i = 0; i < clients; ++i) {
    connections.push_back(grpc::GrpcClient::connect(loop, daemon.socket));
  }
  for (auto& c : connections)
    next(*c, 0);
  loop.run();
  const double seconds = static_cast<double>(uv_hrtime() - loadStart) / 1e9;
  result.callsPerSecond = static_cast<double>(latencies.size()) / seconds;
  std::sort(latencies.begin(), latencies.end());
  result.p50us = percentile(latencies, 0.50);
  result.p90us = percentile(latencies, 0.90);
  result.p99us = percentile(latencies, 0.99);
  result.p999us = percentile(latencies, 0.999);
  result.maxus = latencies.empty() ? 0 : static_cast<double>(latencies.back()) / 1000.0;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CRI Version benchmark: monocri side by side with a peer runtime"};
  int clients = 16;
  int calls = 5000;
  int warmup = 200;
  bool noPeer = false;
  app.add_option("--clients", clients, "Concurrent clients (one connection each)");
  app.add_option("--calls", calls, "Timed calls per client");
  app.add_option("--warmup", warmup, "Untimed calls per client first");
  app.add_flag("--no-peer", noPeer, "Measure monocri only");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  const fs::path binDir = fs::canonical("/proc/self/exe").parent_path();
  std::vector<Daemon> daemons;
  if (auto d = startMonocri(binDir)) {
    daemons.push_back(*d);
  } else {
    fmt::print(stderr, "bench: monocri did not start (see its log under {})\n",
               fs::temp_directory_path().string());
    return 1;
  }
  if (!noPeer) {
    if (auto d = startContainerd()) {
      daemons.push_back(*d);
    } else {
      fmt::print(stderr, "bench: no peer (containerd not installed or did not start)\n");
    }
  }

  std::vector<Result> results;
  for (auto& d : daemons)
    results.push_back(measure(d, clients, calls, warmup));
  for (auto& d : daemons)
    stop(d);

  fmt::print("CRI Version: {} clients x {} calls (after {} warm-up calls each), {} CPUs\n\n",
             clients, calls, warmup, std::thread::hardware_concurrency());
  fmt::print("{:<22}", "");
  for (auto& d : daemons)
    fmt::print("{:>24}", d.name);
  if (daemons.size() == 2) fmt::print("{:>12}", "ratio");
  fmt::print("\n");
  auto row = [&](const char* label, auto field, const char* format) {
    fmt::print("{:<22}", label);
    for (auto& r : results)
      fmt::print("{:>24}", fmt::format(fmt::runtime(format), r.*field));
    if (results.size() == 2 && results[1].*field != 0) {
      fmt::print("{:>12.2f}", results[0].*field / results[1].*field);
    }
    fmt::print("\n");
  };
  row("calls/s", &Result::callsPerSecond, "{:.0f}");
  row("p50 latency (us)", &Result::p50us, "{:.0f}");
  row("p90 latency (us)", &Result::p90us, "{:.0f}");
  row("p99 latency (us)", &Result::p99us, "{:.0f}");
  row("p99.9 latency (us)", &Result::p999us, "{:.0f}");
  row("max latency (us)", &Result::maxus, "{:.0f}");
  row("idle RSS (MiB)", &Result::idleRssMiB, "{:.1f}");
  row("under-load RSS (MiB)", &Result::loadRssMiB, "{:.1f}");
  fmt::print("{:<22}", "errors");
  for (auto& r : results)
    fmt::print("{:>24}", r.errors);
  fmt::print("\n");
  return 0;
}
