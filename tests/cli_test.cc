// Runs the built `tide` binary as a user would and checks what it prints and writes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out;
};

// Runs a shell command line, with stderr in the output.
Result run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// Runs `tide args` with the environment variables `env` ("K=V K=V") added to a copy of this
// process's environment without TIDE_API and TIDE_API_TOKEN.
Result run(const std::string& args, const std::string& env = "") {
  return run_shell("env -u TIDE_API -u TIDE_API_TOKEN " + env + " " + std::string(TIDE_BIN) + " " +
                   args);
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tide_cli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string demo() { return std::string(TIDE_SOURCE_DIR) + "/examples/demo.yaml"; }

TEST(Cli, HelpDescribesEveryCommandAndFlag) {
  const Result top = run("--help");
  EXPECT_EQ(top.status, 0);
  EXPECT_NE(top.out.find("sim"), std::string::npos);
  const Result sim = run("sim --help");
  EXPECT_EQ(sim.status, 0);
  for (const char* flag : {"--config", "--trace", "--synthetic", "--rate", "--duration", "--preset",
                           "--compare", "--seed", "--json", "--out", "--time-col", "--time-unit",
                           "--duration-col", "--input-tokens-col", "--output-tokens-col",
                           "--per-minute", "--warmup", "--reference", "--slo-target"}) {
    EXPECT_NE(sim.out.find(flag), std::string::npos) << flag;
  }
  const Result tune = run("tune --help");
  EXPECT_EQ(tune.status, 0);
  for (const char* flag : {"--config", "--trace", "--synthetic", "--check", "--policy", "--group",
                           "--candidates", "--jobs", "--out", "--slo-target", "--warmup"}) {
    EXPECT_NE(tune.out.find(flag), std::string::npos) << flag;
  }
  const Result serve = run("serve --help");
  EXPECT_EQ(serve.status, 0);
  for (const char* flag : {"--config", "--listen", "--api", "--drain-timeout", "--stop-grace",
                           "{port}", "{tide}", "SIGTERM"}) {
    EXPECT_NE(serve.out.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(top.out.find("status"), std::string::npos);
  EXPECT_NE(top.out.find("history"), std::string::npos);
  const Result status = run("status --help");
  EXPECT_EQ(status.status, 0);
  for (const char* flag : {"ENDPOINT", "--api", "--token", "--timeout", "--json", "TIDE_API",
                           "TIDE_API_TOKEN", "127.0.0.1:8081"}) {
    EXPECT_NE(status.out.find(flag), std::string::npos) << flag;
  }
  const Result history = run("history --help");
  EXPECT_EQ(history.status, 0);
  for (const char* flag : {"ENDPOINT", "--since", "--step", "--decisions", "--api", "--token",
                           "--json", "TIDE_API_TOKEN"}) {
    EXPECT_NE(history.out.find(flag), std::string::npos) << flag;
  }
}

TEST(Cli, AgentHelpAndItsRefusals) {
  const Result help = run("agent --help");
  EXPECT_EQ(help.status, 0);
  for (const char* flag : {"--listen", "--upstream", "--health", "--control", "--endpoint",
                           "--replica-id", "--slots", "--work", "--report-interval", "--keys-file",
                           "--secret-file", "Tide-Route-Token", "TIDE_AGENT_SECRET"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  const std::string base = "agent --upstream 127.0.0.1:1 --endpoint chat --replica-id 3";
  const Result no_secret =
      run_shell("env -u TIDE_AGENT_SECRET " + std::string(TIDE_BIN) + " " + base);
  EXPECT_EQ(no_secret.status, 2);
  EXPECT_NE(no_secret.out.find("TIDE_AGENT_SECRET"), std::string::npos) << no_secret.out;
  const Result bad_work = run(base + " --work bytes");
  EXPECT_EQ(bad_work.status, 2);
  EXPECT_NE(bad_work.out.find("--work: expected tokens or requests"), std::string::npos);
  const Result bad_keys =
      run_shell("env TIDE_AGENT_SECRET=0123456789abcdef0123 TIDE_ROUTE_KEYS='{\"keys\": [{}]}' " +
                std::string(TIDE_BIN) + " " + base);
  EXPECT_EQ(bad_keys.status, 2);
  EXPECT_NE(bad_keys.out.find("TIDE_ROUTE_KEYS: keys[0]"), std::string::npos) << bad_keys.out;
}

TEST(Cli, SeveralGroupsGetARowEachWithTheirShareAndThroughputPerReplica) {
  const fs::path dir = temp_dir("groups");
  std::ofstream(dir / "c.yaml")
      << "endpoints:\n  - name: chat\n    routing: {mode: split, weights: {a: 3, b: 1}}\n"
         "    groups:\n      - {name: a, max_replicas: 4, concurrency: 4, cold_start: 10s, "
         "price: 2, service_time: 1s}\n      - {name: b, max_replicas: 4, concurrency: 4, "
         "cold_start: 10s, price: 1, service_time: 2s}\n";
  const Result r = run("sim --config " + (dir / "c.yaml").string() +
                       " --synthetic poisson --rate 4 --duration 10m --no-progress");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("req/rep-h"), std::string::npos) << r.out;
  // Smooth weighted round robin: b gets every fourth request.
  const Result j = run("sim --config " + (dir / "c.yaml").string() +
                       " --synthetic poisson --rate 4 --duration 10m --no-progress --json");
  const auto summary = nlohmann::json::parse(j.out);
  const uint64_t total = summary["requests"]["total"].get<uint64_t>();
  const uint64_t to_b = summary["groups"][1]["requests"]["total"].get<uint64_t>();
  EXPECT_NEAR(static_cast<double>(to_b), static_cast<double>(total) / 4.0, 1.0);
  EXPECT_NE(r.out.find("\n  chat/a "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  chat/b "), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(Cli, ServeRefusesGroupsItCannotRunWithTheFieldNamed) {
  const fs::path dir = temp_dir("serve_sim_only");
  std::ofstream(dir / "c.yaml")
      << "server: {listen: 127.0.0.1:0, api: 127.0.0.1:0}\nendpoints:\n  - name: chat\n"
         "    groups:\n      - {name: a, provisioner: {kind: simulated}}\n"
         "      - {name: b, provisioner: {kind: local}}\n"
         "      - {name: c, max_replicas: 3, provisioner: {kind: static, urls: "
         "[http://127.0.0.1:1]}}\n";
  const Result r = run("serve --config " + (dir / "c.yaml").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("endpoints[0].groups[0].provisioner.kind: simulated cannot run live"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("endpoints[0].groups[1].provisioner.command: required for kind local"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("endpoints[0].groups[2].max_replicas: must be <= the number of urls (1), "
                       "got 3"),
            std::string::npos)
      << r.out;
  fs::remove_all(dir);
}

TEST(Cli, JsonSummaryHasTheDocumentedFieldsAndIsReproducible) {
  const std::string args =
      "sim --config " + demo() + " --synthetic poisson --rate 3 --duration 20m --seed 4 --json";
  const Result a = run(args);
  ASSERT_EQ(a.status, 0) << a.out;
  auto j = nlohmann::json::parse(a.out);
  for (const char* k : {"total", "ok", "rejected", "timed_out"})
    EXPECT_TRUE(j["requests"].contains(k));
  for (const char* k : {"wait_p50", "wait_p99", "e2e_p50", "e2e_p99"})
    EXPECT_TRUE(j["latency_s"].contains(k));
  EXPECT_TRUE(j["slo"].contains("attainment"));
  for (const char* k :
       {"replica_seconds", "zero_wait_replica_seconds", "work_bound_replica_seconds", "launches",
        "peak_replicas", "scale_reversals"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GT(j["requests"]["total"].get<int>(), 3000);
  auto b = nlohmann::json::parse(run(args).out);
  j.erase("sim");
  b.erase("sim");
  EXPECT_EQ(j.dump(), b.dump());
}

TEST(Cli, CompareWritesOneRowPerPolicyAndTheReportFiles) {
  const fs::path out = temp_dir("compare");
  const Result r =
      run("sim --config " + demo() +
          " --synthetic bursts --rate 4 --duration 40m --compare tide,hf,viewcomfy --out " +
          out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* p : {"tide", "hf", "viewcomfy"}) {
    EXPECT_NE(r.out.find(std::string("\n") + p + " "), std::string::npos) << p;
    EXPECT_TRUE(fs::exists(out / p / "timeline.csv")) << p;
    EXPECT_TRUE(fs::exists(out / p / "decisions.csv")) << p;
  }
  EXPECT_TRUE(fs::exists(out / "summary.json"));
  std::ifstream html(out / "report.html");
  const std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);  // self-contained, no scripts
  fs::remove_all(out);
}

// The report's pictures (also seen in Chromium by tests/web/report.test.mjs): the runs overlaid
// on one scale above the per-run charts, the warm-up shaded, replica axes on whole numbers, and
// the table with every column the terminal prints.
TEST(Cli, ReportOverlaysTheRunsShadesTheWarmupAndHasTheCliColumns) {
  const fs::path out = temp_dir("report");
  const Result r = run("sim --config " + demo() +
                       " --synthetic bursts --rate 4 --duration 40m --warmup 5m --compare "
                       "tide,hf,viewcomfy --no-progress --out " +
                       out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream html(out / "report.html");
  const std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  const size_t overlay = page.find("id=\"overlay-replicas\"");
  ASSERT_NE(overlay, std::string::npos);
  EXPECT_NE(page.find("id=\"overlay-wait\""), std::string::npos);
  EXPECT_LT(overlay, page.find("<h2 id=\"tide\">"));  // above the per-run charts
  // 5m of 40m shaded, on the overlay too: 1/8 of the 840 px plot.
  const size_t shade = page.find("<rect class=\"warmup\"", overlay);
  ASSERT_NE(shade, std::string::npos);
  const std::string rect = page.substr(shade, page.find('>', shade) - shade);
  EXPECT_NE(rect.find("x=\"50.0\""), std::string::npos) << rect;
  EXPECT_NE(rect.find("width=\"105.0\""), std::string::npos) << rect;
  EXPECT_EQ(page.find("text-anchor=\"end\">2.75<"), std::string::npos);
  EXPECT_NE(page.find("text-anchor=\"end\">2<"), std::string::npos);
  for (const char* column : {"requests", "replica-h", "req/rep-h", "SLO met", "reversals"})
    EXPECT_NE(page.find(std::string("<th>") + column + "</th>"), std::string::npos) << column;
  fs::remove_all(out);
}

TEST(Cli, CompareEndsWithTheReferenceRowsInTheTableTheCsvAndTheReport) {
  const fs::path out = temp_dir("reference");
  const Result r = run("sim --config " + demo() +
                       " --synthetic poisson --rate 2 --duration 20m --compare tide,viewcomfy "
                       "--no-progress --out " +
                       out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  const size_t fixed = r.out.find("\nfixed (hindsight) ");
  const size_t clairvoyant = r.out.find("\nclairvoyant ");
  ASSERT_NE(fixed, std::string::npos) << r.out;
  ASSERT_NE(clairvoyant, std::string::npos) << r.out;
  EXPECT_LT(r.out.find("\nviewcomfy "), fixed);  // below the policies
  EXPECT_LT(fixed, clairvoyant);
  EXPECT_NE(r.out.find("replicas, the smallest fixed fleet with 99% within the SLO"),
            std::string::npos)
      << r.out;
  std::ifstream csv(out / "summary.csv");
  const std::string text((std::istreambuf_iterator<char>(csv)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\nfixed (hindsight),"), std::string::npos) << text;
  EXPECT_NE(text.find("\nclairvoyant,"), std::string::npos) << text;
  EXPECT_TRUE(fs::exists(out / "fixed-hindsight" / "timeline.csv"));
  std::ifstream html(out / "report.html");
  const std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(page.find(">clairvoyant</a>"), std::string::npos);
  // A single run asks for them with --reference.
  const Result one = run("sim --config " + demo() +
                         " --synthetic poisson --rate 2 --duration 20m --reference --no-progress");
  ASSERT_EQ(one.status, 0) << one.out;
  EXPECT_NE(one.out.find("\nfixed (hindsight) "), std::string::npos) << one.out;
  fs::remove_all(out);
}

TEST(Cli, TunePrintsTheBlockToPasteBothPartsAndTheFrontier) {
  const fs::path out = temp_dir("tune");
  const Result r = run("tune --config " + demo() +
                       " --synthetic bursts --rate 2 --duration 40m --period 10m --policy "
                       "viewcomfy --candidates 12 --no-progress --out " +
                       out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("scaling:\n  preset: viewcomfy\n  queue_size: "), std::string::npos)
      << r.out;
  for (const char* row : {"\ndefault, fitted part ", "\ndefault, held-out part ",
                          "\ntuned, fitted part ", "\ntuned, held-out part "})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << r.out;
  EXPECT_NE(r.out.find("the last 20% held out (32m to 40m)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Frontier of the "), std::string::npos) << r.out;
  std::ifstream html(out / "report.html");
  const std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(page.find("<circle"), std::string::npos);  // the frontier plot
  fs::remove_all(out);
}

TEST(Cli, TuneRefusesBadFlagsWithAReason) {
  const std::string base =
      "tune --config " + demo() + " --synthetic poisson --rate 1 --duration 10m ";
  const std::pair<const char*, const char*> cases[] = {
      {"--check 95%", "--check: expected a percentage from 1% to 90%"},
      {"--check x", "--check: expected a percentage"},
      {"--slo-target 0.99", "--slo-target: expected a percentage from 50% to 100% (like 99%)"},
      {"--group nope", "--group: no group \"nope\" in the config"},
      {"--policy nope", "--policy: unknown preset \"nope\""},
      {"--candidates 0", "--candidates: expected an integer from 1 to 100000"},
      {"--jobs -1", "--jobs: expected an integer from 0 to 1024"},
  };
  for (const auto& [flags, words] : cases) {
    const Result r = run(base + flags);
    EXPECT_EQ(r.status, 2) << flags;
    EXPECT_NE(r.out.find(words), std::string::npos) << flags << ": " << r.out;
  }
}

TEST(Cli, BadConfigNamesTheFieldAndExitsTwo) {
  const fs::path dir = temp_dir("badconfig");
  std::ofstream(dir / "bad.yaml") << "endpoints:\n  - name: chat\n    groups:\n      - name: g\n"
                                     "        min_replicas: 2\n        max_replicas: 1\n";
  const Result r = run("sim --config " + (dir / "bad.yaml").string() +
                       " --synthetic poisson --rate 1 --duration 1m");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("endpoints[0].groups[0].max_replicas: must be >= min_replicas (2), got 1"),
            std::string::npos)
      << r.out;
  fs::remove_all(dir);
}

TEST(Cli, MalformedTraceRowGivesTheLineNumber) {
  const fs::path dir = temp_dir("badtrace");
  std::ofstream(dir / "t.csv") << "timestamp,duration\n0,1\n1,abc\n";
  std::ofstream(dir / "c.yaml") << "endpoints:\n  - name: chat\n    groups:\n      - name: g\n"
                                   "        service_time: {model: trace}\n";
  const Result r = run("sim --config " + (dir / "c.yaml").string() + " --trace " +
                       (dir / "t.csv").string() + " --time-unit s --duration-col duration");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("t.csv:3:"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(Cli, BadFlagsAreRefusedWithAReason) {
  EXPECT_EQ(run("sim --config " + demo() + " --synthetic poisson --rate 1").status, 2);
  const Result r = run("sim --config " + demo() + " --synthetic waves --rate 1 --duration 1m");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("--synthetic"), std::string::npos);
  const Result p =
      run("sim --config " + demo() + " --synthetic poisson --rate 1 --duration 1m --preset nope");
  EXPECT_NE(p.out.find("unknown preset"), std::string::npos) << p.out;
}

// Without a server: flags are checked before anything is asked, and nobody listening is said.
TEST(Cli, StatusAndHistoryRefuseBadFlagsAndSayWhenNoServerListens) {
  const Result since = run("history chat --since 1x");
  EXPECT_EQ(since.status, 2);
  EXPECT_NE(since.out.find("--since: expected a duration > 0 like 30m, 1h, 2d; got \"1x\""),
            std::string::npos)
      << since.out;
  const Result step = run("history chat --since 1m --step 5m");
  EXPECT_EQ(step.status, 2);
  EXPECT_NE(step.out.find("--step (5m) must not be longer than --since (1m)"), std::string::npos)
      << step.out;
  const Result scheme = run("status --api ftp://127.0.0.1:1");
  EXPECT_EQ(scheme.status, 2);
  EXPECT_NE(scheme.out.find("expected http://HOST:PORT or https://HOST:PORT"), std::string::npos)
      << scheme.out;
  EXPECT_NE(run("history").status, 0) << "the endpoint is required";
  EXPECT_NE(run("history chat --decisions -1").status, 0);
  // Port 1 on the loopback: nothing listens there.
  const Result down = run("status --api http://127.0.0.1:1");
  EXPECT_EQ(down.status, 1);
  EXPECT_EQ(down.out, "tide: cannot reach tide at http://127.0.0.1:1: connection refused\n");
  const Result from_env = run("history chat --since 10m", "TIDE_API=127.0.0.1:1 TIDE_API_TOKEN=x");
  EXPECT_EQ(from_env.status, 1);
  EXPECT_NE(from_env.out.find("cannot reach tide at http://127.0.0.1:1"), std::string::npos)
      << from_env.out;
}

TEST(Cli, VersionNamesTheReleaseAndTheCommit) {
  const Result r = run("--version");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(r.out.starts_with("tide 0.")) << r.out;
  EXPECT_NE(r.out.find("(commit "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(commit unknown)"), std::string::npos) << "built from a git checkout";
}

// A config whose one local group has `command` (a YAML flow list) and `ready` as given.
std::string local_config(const std::string& command, const std::string& ready = "/health") {
  return "server: {listen: 127.0.0.1:0, api: 127.0.0.1:0}\nendpoints:\n  - name: chat\n"
         "    groups:\n      - name: main\n        max_replicas: 2\n        provisioner:\n"
         "          kind: local\n          command: " +
         command + "\n          ready: {path: \"" + ready + "\"}\n";
}

TEST(Cli, ValidatePrintsTheEffectiveConfigWithDefaults) {
  const Result r = run("validate " + std::string(TIDE_SOURCE_DIR) + "/examples/quickstart.yaml");
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* text : {"quickstart.yaml: valid for tide serve: 1 endpoint(s), 1 group(s)",
                           "listen: 127.0.0.1:8080", "metrics_auth: auto", "timeout: 30s",
                           "policy: queue", "path: /health", "tick: 1s", "state:"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  // The simulator's configs have no provisioner to check.
  EXPECT_EQ(run("validate --sim " + demo()).status, 0);
  EXPECT_EQ(run("validate " + demo()).status, 2);
}

TEST(Cli, ValidateCatchesTemplateTyposProgramsThatCannotRunAndProbePaths) {
  const fs::path dir = temp_dir("validate");
  const std::string file = (dir / "c.yaml").string();
  std::ofstream(file) << local_config("[\"{tide}\", demo-model, --port, \"{prot}\"]");
  Result r = run("validate " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find(file + ": endpoints[0].groups[0].provisioner.command[3]: unknown "
                              "placeholder {prot}"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(file + ": endpoints[0].groups[0].provisioner.command: no {port}"),
            std::string::npos)
      << r.out;
  // The same from `tide serve`, before anything starts; and from --dry-run.
  EXPECT_EQ(run("serve --dry-run --config " + file).out, r.out);
  r = run("serve --state :memory: --config " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find(file + ": endpoints[0].groups[0].provisioner.command[3]"), std::string::npos)
      << r.out;

  std::ofstream(dir / "server.py") << "print('hi')\n";
  std::ofstream(file) << local_config("[\"" + (dir / "server.py").string() + "\", \"{port}\"]");
  r = run("validate " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find(file + ": endpoints[0].groups[0].provisioner.command[0]: cannot run " +
                       (dir / "server.py").string() + ": not executable"),
            std::string::npos)
      << r.out;

  std::ofstream(file) << local_config("[\"{tide}\", demo-model, --port, \"{port}\"]", "");
  r = run("validate " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find(file + ": endpoints[0].groups[0].provisioner.ready.path: must start with /"),
            std::string::npos)
      << r.out;
  fs::remove_all(dir);
}

TEST(Cli, ValidateRefusesAModelTwoEndpointsListNamingFileAndField) {
  const fs::path dir = temp_dir("models");
  const std::string file = (dir / "c.yaml").string();
  std::ofstream(file) << local_config("[\"{tide}\", demo-model, --port, \"{port}\"]")
                      << "    models: [llama, qwen]\n  - name: code\n    models: [coder, qwen]\n"
                         "    groups: [{name: g, provisioner: {kind: static, urls: "
                         "[\"http://127.0.0.1:9\"]}, max_replicas: 1}]\n";
  const Result r = run("validate " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find(file + ": endpoints[1].models[1]: model \"qwen\" is served by endpoint "
                              "\"chat\" already"),
            std::string::npos)
      << r.out;
  fs::remove_all(dir);
}

TEST(Cli, TokenShowsAndRotatesTheStateFilesToken) {
  const fs::path dir = temp_dir("token");
  const std::string state = (dir / "tide-state.db").string();
  Result r = run("token show --state " + state);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find(state + ": no such state file"), std::string::npos) << r.out;
  // The token alone on stdout (for `export TIDE_API_TOKEN=$(tide token show)`).
  auto token_of = [&](const std::string& args) {
    const std::string out = (dir / "out").string();
    EXPECT_EQ(run(args + " --state " + state + " > " + out).status, 0) << args;
    std::ifstream in(out);
    std::string token;
    std::getline(in, token);
    return token;
  };
  const std::string first = token_of("token rotate");
  EXPECT_EQ(first.size(), 64u) << first;
  EXPECT_EQ(first.find_first_not_of("0123456789abcdef"), std::string::npos) << first;
  EXPECT_EQ(token_of("token show"), first);
  EXPECT_EQ(token_of("token"), first);
  const std::string second = token_of("token rotate");
  EXPECT_NE(second, first);
  EXPECT_EQ(token_of("token show"), second);
  // While a tide serve holds the state file (its flock): show reads beside it, rotate refuses.
  const std::string held = "flock " + state + " " + std::string(TIDE_BIN);
  const Result shown = run_shell("env -u TIDE_API_TOKEN " + held + " token show --state " + state);
  EXPECT_EQ(shown.status, 0) << shown.out;
  EXPECT_EQ(shown.out, second + "\n");
  const Result refused = run_shell(held + " token rotate --state " + state);
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.out.find("a running tide serve holds it: stop it"), std::string::npos)
      << refused.out;
  EXPECT_NE(run("token turn --state " + state).status, 0);
  fs::remove_all(dir);
}

}  // namespace
