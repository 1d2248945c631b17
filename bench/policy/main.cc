// bench_policy: the policy corpus (issue 14). Runs every workload of the corpus through the
// simulator for every preset and the default, prints one table per set (design, check) and
// writes a CSV. See bench/policy/README.md.
#include <fmt/format.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "corpus.h"
#include "expected_failures.h"
#include "runner.h"

namespace {

using namespace tide;
using namespace tide::bench;

struct Args {
  std::string set = "all";
  std::string only;
  std::string csv;
  size_t jobs = 0;
  bool fast = false;
  bool check_regression = false;
  bool list = false;
  bool default_only = false;
  int tune = 0;
  std::string out;
};

std::vector<const Workload*> select(const std::vector<Workload>& all, const Args& a) {
  std::vector<const Workload*> out;
  for (const auto& w : all) {
    if (a.set != "all" && set_name(w.set) != a.set) continue;
    if (a.fast && !w.fast) continue;
    if (!a.only.empty() && ("," + a.only + ",").find("," + w.name + ",") == std::string::npos)
      continue;
    out.push_back(&w);
  }
  return out;
}

bool expected_to_fail(const std::string& name) {
  return std::find(std::begin(kExpectedFailures), std::end(kExpectedFailures), name) !=
         std::end(kExpectedFailures);
}

// The regression check: every workload passes, or is on the expected-failure list.
int check_regression(const std::vector<WorkloadResult>& results) {
  int failures = 0;
  for (const auto& r : results) {
    const std::string& name = r.workload->name;
    const bool pass = r.error.empty() && r.verdict.pass;
    if (pass && expected_to_fail(name)) {
      fmt::print("note: {} now passes; remove it from bench/policy/expected_failures.h\n", name);
    } else if (!pass && !expected_to_fail(name)) {
      fmt::print("REGRESSION: {}: {}\n", name, r.error.empty() ? r.verdict.failed : r.error);
      ++failures;
    }
  }
  fmt::print("{} regression(s)\n", failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("bench_policy: every scaling policy on the policy corpus (issue 14)");
  Args a;
  app.add_option("--set", a.set, "design, check or all")
      ->check(CLI::IsMember({"design", "check", "all"}))
      ->capture_default_str();
  app.add_option("--only", a.only, "comma-separated workload names");
  app.add_option("--csv", a.csv, "write one row per workload x policy here");
  app.add_option("--jobs", a.jobs, "threads (0: one per core)")->capture_default_str();
  app.add_flag("--fast", a.fast, "the fast subset only (the regression test's workloads)");
  app.add_flag("--check-regression", a.check_regression,
               "exit 1 when the default fails the criteria on a workload not expected to");
  app.add_flag("--list", a.list, "list the workloads and exit");
  app.add_flag("--default-only", a.default_only,
               "run only the default, without presets and references (to iterate on it; "
               "compare with a whole run's --csv)");
  app.add_option("--out", a.out,
                 "write the default's timeline.csv and decisions.csv to OUT/WORKLOAD/");
  app.add_option("--tune", a.tune,
                 "also run tide tune with this many candidates per workload and report the "
                 "default's cost against its optimum (slow: about N x one policy run)")
      ->check(CLI::Range(0, 10000));
  CLI11_PARSE(app, argc, argv);
  try {
    const std::vector<Workload> all = corpus();
    const std::vector<const Workload*> chosen = select(all, a);
    if (chosen.empty()) throw std::runtime_error("no workload matches --set/--only/--fast");
    if (a.list) {
      for (const Workload* w : chosen)
        fmt::print("{:<24} {:<7} {:<16} {}\n", w->name, set_name(w->set), w->family, w->source);
      return 0;
    }
    const TraceFiles files = TraceFiles::find(TIDE_SOURCE_DIR);
    if (!files.missing().empty())
      fmt::print(stderr, "warning: traces not found (data/traces, $TIDE_TRACES): {}\n",
                 files.missing());
    const bool tty = isatty(STDERR_FILENO) != 0;
    const auto start = std::chrono::steady_clock::now();
    auto results = run_corpus(
        chosen, files, a.jobs,
        [&](size_t done, size_t total) {
          if (tty) fmt::print(stderr, "\rsimulated {}/{}", done, total);
        },
        a.out, a.default_only);
    if (tty) fmt::print(stderr, "\r{:30}\r", "");
    if (a.tune > 0)
      tune_corpus(results, files, a.tune, a.jobs,
                  [&](const std::string& name) { fmt::print(stderr, "tuning {}\n", name); });
    print_tables(stdout, results);
    fmt::print("\n{} workloads in {:.1f} s wall\n", results.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!a.csv.empty()) write_csv(a.csv, results);
    return a.check_regression ? check_regression(results) : 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_policy: {}\n", e.what());
    return 2;
  }
}
