// tide: autoscaler and request gateway for GPU model-serving endpoints.
// This file only parses the command line and hands over to the libraries.
#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "operator_commands.h"
#include "tide/agent/agent.h"
#include "tide/cli/commands.h"
#include "tide/cli/keys.h"
#include "tide/common/build_info.h"
#include "tide/common/time.h"
#include "tide/config/config.h"
#include "tide/demo_model/demo_model.h"
#include "tide/serve/serve.h"
#include "tide/sim/engine.h"
#include "tide/sim/sim_command.h"
#include "tide/sim/trace.h"
#include "tide/sim/tune.h"

namespace {

using namespace tide;

long long parse_integer_flag(const std::string& flag, const std::string& text, long long lo,
                             long long hi) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    throw std::runtime_error(
        fmt::format("{}: expected an integer from {} to {}, got \"{}\"", flag, lo, hi, text));
  return v;
}

// The workload flags `tide sim` and `tide tune` share.
struct WorkloadArgs {
  std::string trace_path;
  std::string synthetic;
  double rate = 0;
  std::string duration;
  std::string period = "20m";
  uint64_t seed = 1;
  std::string format = "auto";
  bool per_minute = false;
  std::string time_col = "timestamp";
  std::string time_unit = "datetime";
  std::string duration_col;
  std::string input_tokens_col;
  std::string output_tokens_col;
  std::string stream_col;
  std::string rows = "sum";
  std::string durations_path;
  std::string limit;
  std::string warmup = "0";
  std::string slo_target = "99%";
};

struct SimArgs {
  std::string config_path;
  WorkloadArgs workload;
  std::string preset;
  std::string compare;
  bool reference = false;
  bool json = false;
  std::string out_dir;
  bool no_progress = false;
};

Duration parse_duration_flag(const std::string& flag, const std::string& text) {
  auto d = parse_duration(text);
  if (!d)
    throw CLI::ValidationError(flag,
                               "expected a duration like 500ms, 30s, 3m, 1h; got \"" + text + "\"");
  return *d;
}

// "20%" (or "20") as 0.2, within [lo, hi] percent.
double parse_percent_flag(const std::string& flag, const std::string& text, double lo, double hi) {
  std::string number = text;
  if (!number.empty() && number.back() == '%') number.pop_back();
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != number.size() || !(v >= lo && v <= hi))
    throw std::runtime_error(
        fmt::format("{}: expected a percentage from {}% to {}% (like {}%), "
                    "got \"{}\"",
                    flag, lo, hi, hi < 100 ? 20 : 99, text));
  return v / 100;
}

constexpr const char* kWorkloadHelp = R"(
Workloads:
  --trace FILE                    a request log (CSV or JSONL, one row per request) or a per-minute
                                  count matrix (Azure Functions format); .zst files are read as is.
  --synthetic poisson|bursts|diurnal|periodic --rate R --duration D [--period P]
                                  Poisson arrivals at R/s; bursts: R/s for the first quarter of
                                  every period, idle the rest; diurnal: a sine between 10% and 100%;
                                  periodic: exactly one request every 1/R s.
Request logs: arrivals come from --time-col (unit --time-unit), service times from the group's
  service_time model: fixed, lognormal, tokens (prefill s/input token + decode s/output token,
  token columns auto-detected: ContextTokens/GeneratedTokens, input_tokens/output_tokens) or
  trace (--duration-col, seconds).
Per-minute matrices (--per-minute): each row's count for minute m is expanded into arrivals
  uniform at random within that minute, seeded by --seed. --rows sum merges all rows into one
  stream; --rows each makes one stream per row (matched to endpoints by name). --durations FILE
  (the Azure "_run" file) draws each row's service times from its percentiles.)";

void add_workload_flags(CLI::App* cmd, WorkloadArgs& a) {
  cmd->add_option("--trace", a.trace_path, "workload trace file");
  cmd->add_option("--synthetic", a.synthetic,
                  "synthetic workload: poisson, bursts, diurnal or periodic");
  cmd->add_option("--rate", a.rate, "synthetic arrival rate, requests per second");
  cmd->add_option("--duration", a.duration, "synthetic workload length (e.g. 1h)");
  cmd->add_option("--period", a.period, "period of bursts / diurnal shapes")->capture_default_str();
  cmd->add_option("--seed", a.seed, "random seed")->capture_default_str();
  cmd->add_option("--format", a.format, "trace format: auto, csv, jsonl, per-minute")
      ->capture_default_str();
  cmd->add_flag("--per-minute", a.per_minute, "the trace is a per-minute count matrix");
  cmd->add_option("--time-col", a.time_col, "arrival time column")->capture_default_str();
  cmd->add_option("--time-unit", a.time_unit, "datetime, s, ms or us")->capture_default_str();
  cmd->add_option("--duration-col", a.duration_col, "service time column (seconds)");
  cmd->add_option("--input-tokens-col", a.input_tokens_col, "input token count column");
  cmd->add_option("--output-tokens-col", a.output_tokens_col, "output token count column");
  cmd->add_option("--stream-col", a.stream_col, "column naming the endpoint of each request");
  cmd->add_option("--rows", a.rows, "per-minute rows: sum or each")->capture_default_str();
  cmd->add_option("--durations", a.durations_path, "per-minute: Azure _run file with durations");
  cmd->add_option("--limit", a.limit, "only the first part of the trace (e.g. 2h)");
  cmd->add_option("--warmup", a.warmup,
                  "simulate but do not measure the first part (e.g. 10m): steady state for traces "
                  "cut from a running service")
      ->capture_default_str();
  cmd->add_option("--slo-target", a.slo_target,
                  "share of requests that must wait <= slo.max_wait (reference rows, tune)")
      ->capture_default_str();
}

void add_sim_command(CLI::App& app, SimArgs& a) {
  CLI::App* sim = app.add_subcommand(
      "sim",
      "Replay a workload against the scaling policies on a virtual clock and report latency, SLO "
      "attainment and replica-seconds.");
  sim->footer(std::string(kWorkloadHelp) + R"(
Policies: --preset NAME replaces every group's scaling; --compare a,b,c (or "all") runs each
  preset on the same workload and prints one row each. Presets: )" +
              sim::preset_list() +
              R"help(.
Reference rows (with --compare, or --reference): "fixed (hindsight)", the smallest fixed fleet
  (min = max = N) with --slo-target of requests within the SLO and none lost; "clairvoyant", the
  cheapest schedule that starts every request on arrival, each replica billed from its launch
  including a cold start.
Output: a table (or --json); --out DIR also writes summary.json, summary.csv, timeline.csv,
  decisions.csv and a self-contained report.html (per run in DIR/<policy>/ when comparing).
Same --seed, same result, bit for bit.)help");
  sim->add_option("--config", a.config_path, "endpoint configuration (YAML)")->required();
  add_workload_flags(sim, a.workload);
  sim->add_option("--preset", a.preset, "use this scaling preset for every group");
  sim->add_option("--compare", a.compare, "comma-separated presets to compare, or \"all\"");
  sim->add_flag("--reference", a.reference,
                "add the fixed (hindsight) and clairvoyant rows to a single run");
  sim->add_flag("--json", a.json, "print the summary as JSON instead of a table");
  sim->add_option("--out", a.out_dir,
                  "write summary.json, summary.csv, timeline.csv, decisions.csv, report.html here");
  sim->add_flag("--no-progress", a.no_progress, "no progress bar even on a terminal");
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(start, comma - start);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

sim::TraceOptions trace_options(const WorkloadArgs& a) {
  sim::TraceOptions t;
  t.path = a.trace_path;
  if (a.per_minute || a.format == "per-minute") {
    t.format = sim::TraceOptions::Format::kPerMinute;
  } else if (a.format == "csv") {
    t.format = sim::TraceOptions::Format::kCsv;
  } else if (a.format == "jsonl") {
    t.format = sim::TraceOptions::Format::kJsonl;
  } else if (a.format != "auto") {
    throw std::runtime_error("--format: expected auto, csv, jsonl or per-minute, got \"" +
                             a.format + "\"");
  }
  t.time_col = a.time_col;
  if (a.time_unit == "datetime")
    t.time_unit = sim::TimeUnit::kDatetime;
  else if (a.time_unit == "s")
    t.time_unit = sim::TimeUnit::kSeconds;
  else if (a.time_unit == "ms")
    t.time_unit = sim::TimeUnit::kMillis;
  else if (a.time_unit == "us")
    t.time_unit = sim::TimeUnit::kMicros;
  else
    throw std::runtime_error("--time-unit: expected datetime, s, ms or us, got \"" + a.time_unit +
                             "\"");
  t.duration_col = a.duration_col;
  t.input_tokens_col = a.input_tokens_col;
  t.output_tokens_col = a.output_tokens_col;
  t.stream_col = a.stream_col;
  if (a.rows != "sum" && a.rows != "each")
    throw std::runtime_error("--rows: expected sum or each, got \"" + a.rows + "\"");
  t.sum_rows = a.rows == "sum";
  t.durations_path = a.durations_path;
  t.seed = a.seed;
  if (!a.limit.empty()) t.limit = parse_duration_flag("--limit", a.limit);
  return t;
}

// The workload flags as a workload (checked in the order load_workload used to).
sim::WorkloadSpec workload_spec(const WorkloadArgs& a) {
  if (!a.trace_path.empty() == !a.synthetic.empty())
    throw std::runtime_error("give exactly one workload: --trace FILE or --synthetic SHAPE");
  sim::WorkloadSpec w;
  w.seed = a.seed;
  if (!a.trace_path.empty()) {
    w.trace = trace_options(a);
    return w;
  }
  auto shape = sim::SyntheticSource::parse_shape(a.synthetic);
  if (!shape)
    throw std::runtime_error("--synthetic: expected poisson, bursts, diurnal or periodic, got \"" +
                             a.synthetic + "\"");
  if (a.duration.empty())
    throw std::runtime_error("--duration: required for a synthetic workload (e.g. 1h)");
  w.shape = *shape;
  w.rate = a.rate;
  w.duration = parse_duration_flag("--duration", a.duration);
  sim::check_synthetic(w.rate, w.duration);
  w.period = parse_duration_flag("--period", a.period);
  return w;
}

sim::SourceFactory load_workload(const WorkloadArgs& a) {
  return sim::load_workload(workload_spec(a));
}

std::string workload_title(const WorkloadArgs& a) {
  return a.trace_path.empty()
             ? fmt::format("synthetic {} at {}/s for {}", a.synthetic, a.rate, a.duration)
             : std::filesystem::path(a.trace_path).filename().string();
}

int run_sim(const SimArgs& a) {
  sim::SimCommand c;
  c.base = config::load_config(a.config_path);
  const sim::SourceFactory make_source = load_workload(a.workload);
  c.slo_target = parse_percent_flag("--slo-target", a.workload.slo_target, 50, 100);
  std::optional<std::vector<std::string>> compare;
  if (!a.compare.empty())
    compare = a.compare == "all" ? config::preset_names() : split_list(a.compare);
  c.configs = sim::policy_configs(c.base, compare, a.preset);
  c.reference = compare.has_value() || a.reference;
  c.seed = a.workload.seed;
  c.warmup = parse_duration_flag("--warmup", a.workload.warmup);
  c.json = a.json;
  c.out_dir = a.out_dir;
  c.progress = isatty(STDERR_FILENO) != 0 && !a.no_progress;
  c.title = workload_title(a.workload);
  return sim::run_sim_command(std::move(c), make_source, std::cout);
}

struct TuneArgs {
  std::string config_path;
  WorkloadArgs workload;
  std::string check = "20%";
  std::string policy;
  std::string group;
  std::string out_dir;
  std::string jobs = "0";
  std::string candidates = "200";
  bool no_progress = false;
};

void add_tune_command(CLI::App& app, TuneArgs& a) {
  CLI::App* tune = app.add_subcommand(
      "tune",
      "Search a group's scaling parameters for the fewest replica-seconds that keep the SLO "
      "target with nothing lost, on the first part of a workload; check the winner on the rest.");
  tune->footer(std::string(kWorkloadHelp) + R"(
Search: the group's own policy (default tide), or --policy PRESET's parameters; the default, a
  Latin hypercube over half of --candidates, then local refinement around the best so far. It
  fits on the first part of the workload and replays the winner and the default on the last
  --check share (in steady state after the part before), so you see whether the setting holds
  beyond the data it was fitted to. Candidates run on --jobs threads (0: every core).
Prints both parts for the default and the winner, the winning `scaling:` block to paste into the
  group, and the cost/attainment frontier explored; --out DIR writes report.html with the
  frontier as a chart. Same --seed, same result, whatever --jobs.)");
  tune->add_option("--config", a.config_path, "endpoint configuration (YAML)")->required();
  add_workload_flags(tune, a.workload);
  tune->add_option("--check", a.check, "the last share of the workload held out (1% to 90%)")
      ->capture_default_str();
  tune->add_option("--policy", a.policy,
                   "search this preset's parameters instead of the group's own policy");
  tune->add_option("--group", a.group, "the group to tune: GROUP or ENDPOINT/GROUP");
  tune->add_option("--candidates", a.candidates, "how many settings to simulate")
      ->capture_default_str();
  tune->add_option("--jobs", a.jobs, "threads (0: one per core)")->capture_default_str();
  tune->add_option("--out", a.out_dir, "write report.html here");
  tune->add_flag("--no-progress", a.no_progress, "no progress bar even on a terminal");
}

int run_tune(const TuneArgs& a) {
  const config::Config config = config::load_config(a.config_path);
  const sim::SourceFactory make_source = load_workload(a.workload);
  sim::TuneOptions o;
  o.group = a.group;
  o.policy = a.policy;
  o.check = parse_percent_flag("--check", a.check, 1, 90);
  o.target = parse_percent_flag("--slo-target", a.workload.slo_target, 50, 100);
  o.candidates = static_cast<int>(parse_integer_flag("--candidates", a.candidates, 1, 100000));
  o.jobs = static_cast<size_t>(parse_integer_flag("--jobs", a.jobs, 0, 1024));
  o.sim.seed = a.workload.seed;
  o.sim.warmup = parse_duration_flag("--warmup", a.workload.warmup);
  if (isatty(STDERR_FILENO) != 0 && !a.no_progress) {
    o.progress = [](size_t done, size_t total) {
      sim::draw_progress(static_cast<double>(done) /
                         static_cast<double>(std::max<size_t>(total, 1)));
    };
  }
  const sim::TuneResult r = sim::tune(config, make_source, o);
  if (o.progress) sim::draw_progress(1.0);
  std::cout << sim::format_tune(r);
  if (!a.out_dir.empty()) {
    sim::write_tune_report(a.out_dir, r, "tide tune: " + workload_title(a.workload));
    std::cout << "report: " << a.out_dir << "/report.html\n";
  }
  return 0;
}

struct DemoModelArgs {
  std::string host = "127.0.0.1";
  std::string port = "0";
  std::string concurrency = "4";
  std::string load_time = "0";
  std::string service = "fixed:1s";
  std::string token_rate = "0";
  std::string seed = "1";
  std::string model = "tide-demo";
  std::string engine = "vllm";
  bool timing = false;
};

void add_demo_model_command(CLI::App& app, DemoModelArgs& a) {
  CLI::App* dm = app.add_subcommand(
      "demo-model",
      "Run an EMULATED model server for demos and tests. It runs no model: it answers an "
      "OpenAI-compatible API with fake text after emulated service times.");
  dm->footer(R"(
This is an emulator, not a model server. It behaves like one replica of an LLM server:
  - a cold start: GET /health answers 503 {"status":"loading"} for --load-time, then 200;
  - --concurrency slots; a request holds one for its service time, and waits FIFO for one when
    all are busy (like vLLM); a client that disconnects frees its slot;
  - GET /metrics: the load gauges of the --engine it emulates, from its state: vllm (default)
    vllm:num_requests_running / vllm:num_requests_waiting / vllm:kv_cache_usage_perc, tgi
    tgi_batch_current_size / tgi_queue_size, sglang sglang:num_running_reqs /
    sglang:num_queue_reqs / sglang:token_usage (the KV cache: the share of slots taken);
  - POST /v1/completions and /v1/chat/completions (OpenAI shapes) return fake text of max_tokens
    tokens (default 16) with usage counts; "stream": true sends one server-sent event per token
    at --token-rate, then data: [DONE].
Service times (--service):
  fixed:D                every request takes D (e.g. fixed:1s)
  lognormal:MEDIAN,SIGMA lognormal with that median and sigma (e.g. lognormal:1s,0.5)
  tokens:PREFILL,DECODE  PREFILL s per input token (prompt words) + DECODE s per output token
                         (e.g. tokens:0.0002,0.02)
Streaming: the first token comes after the prefill (tokens) or after the part of the service
  time that decoding at --token-rate does not fill; --token-rate 0 means 1/DECODE for tokens,
  else 50 tokens/s.
Prints "listening on HOST:PORT" once bound (--port 0 picks a free port); stops cleanly on
  SIGINT/SIGTERM.)");
  dm->add_option("--host", a.host, "address to listen on")
      ->type_name("ADDR")
      ->capture_default_str();
  dm->add_option("--port", a.port, "port to listen on; 0 picks a free one")
      ->type_name("PORT")
      ->capture_default_str();
  dm->add_option("--concurrency", a.concurrency, "requests served at once (slots)")
      ->type_name("N")
      ->capture_default_str();
  dm->add_option("--load-time", a.load_time, "cold start before /health answers 200 (e.g. 2s)")
      ->type_name("DURATION")
      ->capture_default_str();
  dm->add_option("--service", a.service,
                 "service time: fixed:D, lognormal:MEDIAN,SIGMA or tokens:PREFILL,DECODE")
      ->type_name("MODEL")
      ->capture_default_str();
  dm->add_option("--token-rate", a.token_rate, "streaming tokens per second (0: derived)")
      ->type_name("TOKENS/S")
      ->capture_default_str();
  dm->add_option("--seed", a.seed, "random seed for service times and text")
      ->type_name("N")
      ->capture_default_str();
  dm->add_option("--model", a.model, "model name reported in responses")
      ->type_name("NAME")
      ->capture_default_str();
  dm->add_option("--engine", a.engine, "whose /metrics names to export: vllm, tgi or sglang")
      ->capture_default_str();
  dm->add_flag("--timing", a.timing,
               "completions carry Demo-Health-Lag-Us (end of the cold start to the first 200 of "
               "/health) and Demo-Ready-To-Request-Us (that 200 to the request's arrival)");
}

int run_demo_model(const DemoModelArgs& a) {
  demo_model::DemoModelOptions o;
  o.host = a.host;
  o.port = static_cast<uint16_t>(parse_integer_flag("--port", a.port, 0, 65535));
  o.concurrency = static_cast<int>(parse_integer_flag("--concurrency", a.concurrency, 1, 100000));
  auto load = parse_duration(a.load_time);
  if (!load || load->count() < 0)
    throw std::runtime_error("--load-time: expected a duration like 500ms, 30s, 3m; got \"" +
                             a.load_time + "\"");
  o.load_time = *load;
  std::string error;
  auto service = demo_model::parse_service_model(a.service, error);
  if (!service) throw std::runtime_error("--service: " + error);
  o.service = *service;
  size_t used = 0;
  double rate = -1;
  try {
    rate = std::stod(a.token_rate, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != a.token_rate.size() || !(rate >= 0) || rate > 1e9)
    throw std::runtime_error("--token-rate: expected tokens per second >= 0, got \"" +
                             a.token_rate + "\"");
  o.token_rate = rate;
  o.seed = static_cast<uint64_t>(
      parse_integer_flag("--seed", a.seed, 0, std::numeric_limits<long long>::max()));
  o.model_name = a.model;
  const auto engine = metrics::engine_kind(a.engine);
  if (!engine)
    throw std::runtime_error("--engine: expected vllm, tgi or sglang, got \"" + a.engine + "\"");
  o.engine = *engine;
  o.timing = a.timing;
  o.handle_signals = true;
  demo_model::DemoModelServer server(o);
  std::cout << "listening on " << o.host << ":" << server.port() << std::endl;
  server.run();
  return 0;
}

struct AgentArgs {
  std::string listen = "127.0.0.1:0";
  std::string advertise;
  std::string upstream;
  std::string health = "/health";
  std::string control;
  std::string endpoint;
  std::string replica_id;
  std::string slots = "1";
  std::string work = "tokens";
  std::string report_interval = "1s";
  std::string engine_metrics;
  std::string engine_kind = "vllm";
  std::string engine_interval = "1s";
  std::string engine_timeout = "1s";
  std::string engine_max_bytes = "1048576";
  std::string keys_file;
  std::string secret_file;
  std::vector<std::string> command;
};

void add_agent_command(CLI::App& app, AgentArgs& a) {
  CLI::App* agent = app.add_subcommand(
      "agent",
      "Run the worker-side agent in front of one model server (one replica): admits requests with "
      "a route token or the replica's secret, proxies them, and reports readiness and load.");
  agent->footer(R"(
`tide serve` starts one per replica of a group with `agent: {enabled: true}`; run it by hand
beside a model server that runs elsewhere. What it does:
  - admits a request only with `Tide-Route-Token: <token>` (from POST /v1/route of the control
    plane: Ed25519 signature, expiry, endpoint, replica and single use are checked) or with
    `Tide-Replica-Secret: <secret>` (sent by tide's gateway); otherwise 401 or 403 with a JSON
    reason (missing_token, bad_signature, expired, unknown_key, wrong_replica, replayed, ...);
  - lets --slots requests through to the model server at once, queues the rest, streams answers
    (SSE) through, and measures in service, queued, latency, work (tokens from `usage`, or 1 per
    request), throughput and load against a capacity learned from what it served;
  - watches the model server's health (--health) and reports readiness at once and a load
    report every --report-interval to --control (POST /v1/agent/report); GPU readings come from
    NVML (libnvidia-ml.so.1) when it is present;
  - GET /tide/health (200 when the model server is ready) and GET /tide/status (counters) need no
    token.
Secrets: the replica secret comes from TIDE_AGENT_SECRET (or --secret-file), the trusted public
keys from TIDE_ROUTE_KEYS (or --keys-file; the JSON of GET /v1/pubkey) and are refreshed from the
control plane. After `--`, a command to run the model server as the agent's child: the agent
then exits with its status.)");
  agent->add_option("--listen", a.listen, "address to serve on (port 0: any)")
      ->type_name("HOST:PORT")
      ->capture_default_str();
  agent->add_option("--advertise", a.advertise, "address reported to the control plane")
      ->type_name("HOST:PORT");
  agent->add_option("--upstream", a.upstream, "the model server")
      ->type_name("HOST:PORT")
      ->required();
  agent->add_option("--health", a.health, "the model server's health path")->capture_default_str();
  agent->add_option("--control", a.control, "the control plane's API, for reports and keys")
      ->type_name("http://HOST:PORT");
  agent->add_option("--endpoint", a.endpoint, "the endpoint this replica serves")->required();
  agent->add_option("--replica-id", a.replica_id, "this replica's id")->type_name("N")->required();
  agent->add_option("--slots", a.slots, "requests let through to the model server at once")
      ->type_name("N")
      ->capture_default_str();
  agent->add_option("--work", a.work, "work measure: tokens (from usage) or requests")
      ->capture_default_str();
  agent->add_option("--report-interval", a.report_interval, "between load reports")
      ->type_name("DURATION")
      ->capture_default_str();
  agent
      ->add_option("--engine-metrics", a.engine_metrics,
                   "the model server's Prometheus page, read and reported (e.g. /metrics)")
      ->type_name("PATH");
  agent->add_option("--engine-kind", a.engine_kind, "its metric names: vllm, tgi or sglang")
      ->capture_default_str();
  agent->add_option("--engine-interval", a.engine_interval, "between reads of the page")
      ->type_name("DURATION")
      ->capture_default_str();
  agent->add_option("--engine-timeout", a.engine_timeout, "for one read of the page")
      ->type_name("DURATION")
      ->capture_default_str();
  agent->add_option("--engine-max-bytes", a.engine_max_bytes, "a longer page is refused")
      ->type_name("N")
      ->capture_default_str();
  agent->add_option("--keys-file", a.keys_file, "trusted public keys (JSON of GET /v1/pubkey)");
  agent->add_option("--secret-file", a.secret_file, "file holding the replica secret");
  agent->add_option("command", a.command, "after --: the model server to run as a child");
}

std::string read_text_file(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read {}", flag, path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// --engine-*: where and how the agent reads its model server's metrics page.
void read_engine_flags(const AgentArgs& a, agent::AgentOptions& o) {
  if (a.engine_metrics.empty()) return;
  if (a.engine_metrics.front() != '/')
    throw std::runtime_error("--engine-metrics: must start with /, got " + a.engine_metrics);
  o.engine_path = a.engine_metrics;
  const auto kind = metrics::engine_kind(a.engine_kind);
  if (!kind)
    throw std::runtime_error("--engine-kind: expected vllm, tgi or sglang, got " + a.engine_kind);
  o.engine_kind = *kind;
  o.engine_interval = parse_duration_flag("--engine-interval", a.engine_interval);
  o.engine_timeout = parse_duration_flag("--engine-timeout", a.engine_timeout);
  if (o.engine_interval <= Duration{0} || o.engine_timeout <= Duration{0})
    throw std::runtime_error("--engine-interval, --engine-timeout: must be > 0");
  o.engine_max_bytes = static_cast<size_t>(
      parse_integer_flag("--engine-max-bytes", a.engine_max_bytes, 1024, 64 * 1024 * 1024));
}

int run_agent(const AgentArgs& a) {
  agent::AgentOptions o;
  o.listen = a.listen;
  o.advertise = a.advertise;
  o.upstream = a.upstream;
  o.health_path = a.health;
  if (o.health_path.empty() || o.health_path.front() != '/')
    throw std::runtime_error(
        "--health: must start with /, got "
        " + a.health + "
        "");
  o.control = a.control;
  o.endpoint = a.endpoint;
  o.replica_id = static_cast<uint64_t>(
      parse_integer_flag("--replica-id", a.replica_id, 1, std::numeric_limits<long long>::max()));
  o.slots = static_cast<int>(parse_integer_flag("--slots", a.slots, 1, 100000));
  if (a.work != "tokens" && a.work != "requests")
    throw std::runtime_error(
        "--work: expected tokens or requests, got "
        " + a.work + "
        "");
  o.work_tokens = a.work == "tokens";
  o.report_interval = parse_duration_flag("--report-interval", a.report_interval);
  if (o.report_interval <= Duration{0}) throw std::runtime_error("--report-interval: must be > 0");
  read_engine_flags(a, o);
  if (!a.secret_file.empty()) {
    o.secret = read_text_file("--secret-file", a.secret_file);
    while (!o.secret.empty() && (o.secret.back() == '\n' || o.secret.back() == '\r'))
      o.secret.pop_back();
  } else if (const char* s = std::getenv("TIDE_AGENT_SECRET")) {
    o.secret = s;
  }
  std::string keys;
  if (!a.keys_file.empty()) {
    keys = read_text_file("--keys-file", a.keys_file);
  } else if (const char* k = std::getenv("TIDE_ROUTE_KEYS")) {
    keys = k;
  }
  if (!keys.empty()) {
    try {
      o.keys = agent::parse_public_keys(keys);
    } catch (const std::exception& e) {
      throw std::runtime_error(
          fmt::format("{}: {}", a.keys_file.empty() ? "TIDE_ROUTE_KEYS" : "--keys-file", e.what()));
    }
  }
  o.command = a.command;
  o.handle_signals = true;
  agent::Agent agent(o);
  return agent.run();
}

struct ServeArgs {
  std::string config_path;
  std::string listen;
  std::string api;
  std::string state;
  std::string drain_timeout = "30s";
  std::string stop_grace = "10s";
  std::string web;
  bool dry_run = false;
};

void add_serve_command(CLI::App& app, ServeArgs& a) {
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run the gateway, the control loop and the replicas of every endpoint in the config.");
  serve->footer(R"(
Clients call http://LISTEN/<endpoint>/<path> (or send the header Tide-Endpoint: <endpoint>); the
replica receives /<path>. While no replica has a free slot the request waits in the endpoint's
hold queue: 429 when it is full, 503 after queue.timeout. The admin API (GET /v1/endpoints,
/v1/endpoints/<name>, .../history, .../decisions, PUT /v1/endpoints/<name>, /v1/events),
/metrics (Prometheus) and the dashboard (/) listen on server.api. The API needs
Authorization: Bearer <token> (server.api_token, TIDE_API_TOKEN, or the token printed at first
start). The state file keeps replicas, decisions, history and configuration changes: after a
crash, the next start adopts the replicas still running.
Groups with `agent: {enabled: true}` get two-step routing: POST /v1/route, GET /v1/pubkey (see
`tide agent --help`).
In a local provisioner's command, {port} is the port the replica must listen on, {replica_id}
its id, and {tide} the path of this tide binary (for `{tide} demo-model`).
SIGINT or SIGTERM: stop accepting, answer held requests 503, finish requests in progress (up to
--drain-timeout), stop every replica, exit 0.)");
  serve->add_option("--config", a.config_path, "endpoint configuration (YAML)")->required();
  serve->add_option("--listen", a.listen, "gateway address, overrides server.listen");
  serve->add_option("--api", a.api, "admin API address, overrides server.api");
  serve->add_option("--state", a.state,
                    "state file (SQLite), overrides state.path; :memory: keeps nothing");
  serve
      ->add_option("--drain-timeout", a.drain_timeout,
                   "at shutdown, how long requests in progress may take to finish")
      ->capture_default_str();
  serve
      ->add_option("--stop-grace", a.stop_grace,
                   "replicas get SIGTERM, then SIGKILL after this long")
      ->capture_default_str();
  serve->add_flag("--dry-run", a.dry_run,
                  "check the configuration as `tide validate` does, print it, and exit");
  serve->add_option("--web", a.web,
                    "the dashboard's built files (default: share/tide/web beside this binary's "
                    "bin/)");
}

int run_serve(const ServeArgs& a) {
  config::Config c = config::load_config(a.config_path);
  if (!a.listen.empty()) c.server.listen = a.listen;
  if (!a.api.empty()) c.server.api = a.api;
  if (!a.state.empty()) c.state.path = a.state;
  if (a.dry_run) return app::check_and_print(c, a.config_path, /*for_serving=*/true);
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  serve::ServeOptions o;
  o.config_path = a.config_path;
  o.drain_timeout = parse_duration_flag("--drain-timeout", a.drain_timeout);
  o.stop_grace = parse_duration_flag("--stop-grace", a.stop_grace);
  o.web_dir =
      a.web.empty()
          ? (std::filesystem::path(self).parent_path().parent_path() / "share/tide/web").string()
          : a.web;
  serve::Server server(c, o);
  server.run();
  return 0;
}

// Flags shared by the commands that read a running server's admin API.
struct ApiArgs {
  std::string api;
  std::string token;
  std::string cacert;
  std::string timeout = "10s";
  bool json = false;
};

struct StatusArgs {
  ApiArgs api;
  std::vector<std::string> endpoints;
};

struct HistoryArgs {
  ApiArgs api;
  std::string endpoint;
  std::string since = "1h";
  std::string step = "auto";
  int decisions = 10;
};

struct KeysArgs {
  ApiArgs api;
  std::string name;
  std::vector<std::string> endpoints;
  double rate = 0;
  int concurrency = 0;
};

constexpr const char* kApiFooter = R"(
The admin API: --api, else TIDE_API, else http://127.0.0.1:8081 (server.api's default; HOST:PORT
as given to `tide serve --api` works too; https://HOST:PORT for an API with server.api_tls, its
certificate verified against --cacert, else TIDE_CACERT, else the system's CAs). The token:
--token, else TIDE_API_TOKEN; it is sent as Authorization: Bearer <token>. Exit status 1 when the server cannot be reached or refuses, 2 on
bad flags.)";

void add_api_flags(CLI::App* cmd, ApiArgs& a) {
  cmd->add_option("--api", a.api,
                  "admin API of the running tide (default: TIDE_API, else "
                  "http://127.0.0.1:8081)")
      ->type_name("URL");
  cmd->add_option("--token", a.token, "API token (default: TIDE_API_TOKEN)")->type_name("TOKEN");
  cmd->add_option("--cacert", a.cacert,
                  "CA certificates (PEM) to verify an https:// API with (default: TIDE_CACERT, "
                  "else the system's)")
      ->type_name("FILE");
  cmd->add_option("--timeout", a.timeout, "give up on an answer after this long")
      ->type_name("DURATION")
      ->capture_default_str();
  cmd->add_flag("--json", a.json, "print the API's JSON instead of tables");
}

void add_status_command(CLI::App& app, StatusArgs& a) {
  CLI::App* status = app.add_subcommand(
      "status", "Show the endpoints of a running `tide serve`: groups, replica counts, replicas.");
  status->footer(std::string(R"(
Per endpoint: routing, queued, requests and rejections; per group: desired, ready, starting and
draining replicas, min/max, queued, in flight, latency p50/p95 since start, the policy's last
reason and failures; per replica: name (endpoint/group/id), state, address, age, in flight, cold
start and error.)") +
                 kApiFooter);
  status->add_option("endpoint", a.endpoints, "only these endpoints (default: all)")
      ->type_name("ENDPOINT");
  add_api_flags(status, a.api);
}

void add_history_command(CLI::App& app, HistoryArgs& a) {
  CLI::App* history = app.add_subcommand(
      "history",
      "Show an endpoint's replicas and load over time: a chart and a table per group, and the "
      "last scaling decisions.");
  history->footer(std::string(R"(
Reads GET /v1/endpoints/ENDPOINT/history (and .../decisions) from now - --since to now (this
machine's clock). Chart: # ready, + starting, . desired but neither. Table columns: time,
desired, ready, starting, draining, queued, in flight, requests and latency p50/p95 of each step
(counts are the maximum over the step). --step auto gives about 40 rows.)") +
                  kApiFooter);
  history->add_option("endpoint", a.endpoint, "the endpoint")->type_name("ENDPOINT")->required();
  history->add_option("--since", a.since, "how far back: 30m, 1h, 2d")
      ->type_name("DURATION")
      ->capture_default_str();
  history->add_option("--step", a.step, "one row per step: 10s, 1m, or auto")
      ->type_name("DURATION")
      ->capture_default_str();
  history->add_option("--decisions", a.decisions, "list the last N scaling decisions; 0: none")
      ->type_name("N")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  add_api_flags(history, a.api);
}

void add_keys_command(CLI::App& app, KeysArgs& a) {
  CLI::App* keys = app.add_subcommand(
      "keys", "Add, list and revoke the gateway's client API keys (server.client_auth: keys).");
  keys->require_subcommand(1);
  keys->footer(std::string(R"(
Clients send a key as Authorization: Bearer <key>. tide keeps only each key's SHA-256 in its state
file: `add` prints the key once, on stdout; a revoked key stops working at once, without a
restart.)") + kApiFooter);
  CLI::App* add = keys->add_subcommand("add", "Make a key; prints it (the only time it is shown).");
  add->add_option("name", a.name, "the key's name (letters, digits, . _ -; shown in /metrics)")
      ->required();
  add->add_option("--endpoint", a.endpoints, "an endpoint it may use (repeat; default: all)")
      ->type_name("ENDPOINT");
  add->add_option("--rate", a.rate, "requests per second it may send (default: no limit)")
      ->type_name("R")
      ->check(CLI::Range(0.001, 1e6));
  add->add_option("--concurrency", a.concurrency,
                  "requests it may have in flight (default: no limit)")
      ->type_name("N")
      ->check(CLI::Range(1, 1000000));
  add_api_flags(add, a.api);
  CLI::App* list = keys->add_subcommand("list", "The keys' names, endpoints and request counts.");
  add_api_flags(list, a.api);
  CLI::App* revoke = keys->add_subcommand("revoke", "Revoke a key: it stops working at once.");
  revoke->add_option("name", a.name, "the key's name")->required();
  add_api_flags(revoke, a.api);
}

// How the admin API is reached, from the flags and the environment.
cli::AdminApi connect_api(const ApiArgs& a) {
  const cli::Connection c =
      cli::resolve_connection(a.api, std::getenv("TIDE_API"), a.token,
                              std::getenv("TIDE_API_TOKEN"), a.cacert, std::getenv("TIDE_CACERT"));
  const Duration timeout = parse_duration_flag("--timeout", a.timeout);
  if (timeout.count() <= 0) throw CLI::ValidationError("--timeout", "must be > 0");
  return cli::AdminApi(c.url.text, !c.token.empty(), cli::http_fetch(c, timeout),
                       cli::http_send(c, timeout));
}

// Colours only on a terminal, and not with NO_COLOR (https://no-color.org) or TERM=dumb.
cli::FormatOptions terminal_format() {
  cli::FormatOptions f;
  const bool tty = isatty(STDOUT_FILENO) != 0;
  const char* term = std::getenv("TERM");
  f.color = tty && std::getenv("NO_COLOR") == nullptr &&
            !(term != nullptr && std::string_view(term) == "dumb");
  winsize ws{};
  if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) f.width = ws.ws_col;
  return f;
}

int run_status(const StatusArgs& a) {
  cli::StatusOptions o;
  o.endpoints = a.endpoints;
  o.json = a.api.json;
  o.format = terminal_format();
  return cli::run_status(connect_api(a.api), o, std::cout, std::cerr);
}

int run_history(const HistoryArgs& a) {
  cli::HistoryOptions o;
  o.endpoint = a.endpoint;
  o.since = cli::parse_since(a.since);
  o.step = cli::parse_step(a.step);
  cli::check_span(o.since, o.step.count() > 0 ? o.step : cli::auto_step(o.since));
  o.decisions = a.decisions;
  o.json = a.api.json;
  o.format = terminal_format();
  // The span ends now by this machine's wall clock: the API takes Unix seconds.
  o.now_s = to_seconds(SystemClock().now());
  return cli::run_history(connect_api(a.api), o, std::cout, std::cerr);
}

int run_keys(CLI::App& keys, const KeysArgs& a) {
  cli::KeysOptions o;
  o.name = a.name;
  o.endpoints = a.endpoints;
  o.rate = a.rate;
  o.concurrency = a.concurrency;
  o.json = a.api.json;
  if (keys.got_subcommand("add")) o.action = cli::KeysOptions::Action::kAdd;
  if (keys.got_subcommand("revoke")) o.action = cli::KeysOptions::Action::kRevoke;
  return cli::run_keys(connect_api(a.api), o, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tide: autoscaler and request gateway for GPU model-serving endpoints"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       fmt::format("tide {} (commit {})", build_version(), build_commit()),
                       "print the version and the git commit this tide was built from");
  app.footer("Run `tide <command> --help` for the flags of a command.");
  SimArgs sim_args;
  add_sim_command(app, sim_args);
  TuneArgs tune_args;
  add_tune_command(app, tune_args);
  DemoModelArgs demo_args;
  add_demo_model_command(app, demo_args);
  ServeArgs serve_args;
  add_serve_command(app, serve_args);
  AgentArgs agent_args;
  add_agent_command(app, agent_args);
  StatusArgs status_args;
  add_status_command(app, status_args);
  HistoryArgs history_args;
  add_history_command(app, history_args);
  KeysArgs keys_args;
  add_keys_command(app, keys_args);
  app::ValidateArgs validate_args;
  app::add_validate_command(app, validate_args);
  app::TokenArgs token_args;
  app::add_token_command(app, token_args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("sim")) return run_sim(sim_args);
    if (app.got_subcommand("tune")) return run_tune(tune_args);
    if (app.got_subcommand("demo-model")) return run_demo_model(demo_args);
    if (app.got_subcommand("serve")) return run_serve(serve_args);
    if (app.got_subcommand("agent")) return run_agent(agent_args);
    if (app.got_subcommand("status")) return run_status(status_args);
    if (app.got_subcommand("history")) return run_history(history_args);
    if (app.got_subcommand("keys")) return run_keys(*app.get_subcommand("keys"), keys_args);
    if (app.got_subcommand("validate")) return app::run_validate(validate_args);
    if (app.got_subcommand("token")) return app::run_token(token_args);
  } catch (const config::ConfigError& e) {
    // Each problem as FILE: FIELD: REASON (checks after parsing know no file: the command's).
    const std::string file = !e.source().empty()              ? e.source()
                             : app.got_subcommand("serve")    ? serve_args.config_path
                             : app.got_subcommand("validate") ? validate_args.config_path
                                                              : sim_args.config_path;
    std::cerr << "tide: invalid configuration:\n";
    for (const auto& p : e.problems()) std::cerr << "  " << file << ": " << p << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tide: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
