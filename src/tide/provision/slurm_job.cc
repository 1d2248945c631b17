#include "tide/provision/slurm_job.h"

#include <fmt/format.h>

#include <charconv>

namespace tide::provision::detail {

namespace {

// One word for bash, in single quotes; {port} and {replica_id} substituted.
std::string shell_word(std::string_view arg, std::string_view id) {
  std::string out = "'";
  for (size_t i = 0; i < arg.size(); ++i) {
    const std::string_view rest = arg.substr(i);
    if (rest.starts_with("{port}")) {
      out += "'\"$TIDE_PORT\"'";
      i += 5;
    } else if (rest.starts_with("{replica_id}")) {
      out += id;
      i += 11;
    } else if (arg[i] == '\'') {
      out += "'\\''";
    } else {
      out += arg[i];
    }
  }
  return out + "'";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Splits `line` at '|' into exactly `n` fields (the last one takes the rest).
std::optional<std::vector<std::string_view>> fields(std::string_view line, size_t n) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const size_t bar = line.find('|');
    if (bar == std::string_view::npos) return std::nullopt;
    out.push_back(line.substr(0, bar));
    line.remove_prefix(bar + 1);
  }
  out.push_back(line);
  return out;
}

template <class F>
void for_each_line(std::string_view text, F f) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = trim(text.substr(0, nl));
    if (!line.empty()) f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

}  // namespace

std::string slurm_batch_script(uint64_t replica_id, std::string_view replica_name,
                               const std::vector<std::string>& command) {
  const std::string id = std::to_string(replica_id);
  std::string exec = "exec";
  for (const std::string& arg : command) exec += " " + shell_word(arg, id);
  return fmt::format(
      R"sh(#!/bin/bash
# tide replica {name}: pick a free port on this node, tell tide through the job's comment, run.
export TIDE_REPLICA_ID={id} TIDE_REPLICA_NAME={quoted_name}
port=
for attempt in $(seq 100); do
  p=$(({min} + RANDOM % {span}))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
if [ -z "$port" ]; then echo "tide: no free port on $(hostname)" >&2; exit 1; fi
export TIDE_PORT=$port
if ! scontrol update JobId="$SLURM_JOB_ID" Comment="tide:port=$port"; then
  echo "tide: cannot write the port into the job's comment (scontrol update)" >&2; exit 1
fi
{exec}
)sh",
      fmt::arg("name", replica_name), fmt::arg("id", id),
      fmt::arg("quoted_name", shell_word(replica_name, id)), fmt::arg("min", kSlurmPortMin),
      fmt::arg("span", kSlurmPortMax - kSlurmPortMin + 1), fmt::arg("exec", exec));
}

std::string slurm_time(Duration d) {
  int64_t s = (d.count() + 999'999'999) / 1'000'000'000;
  const int64_t days = s / 86400;
  s %= 86400;
  return fmt::format("{}-{:02}:{:02}:{:02}", days, s / 3600, s / 60 % 60, s % 60);
}

std::vector<std::string> sbatch_argv(const config::SlurmSpec& spec, std::string_view job_name) {
  // --no-requeue: a job lost with its node ends (NODE_FAIL) and tide decides about a
  // replacement, instead of Slurm queueing the same job again behind tide's back.
  std::vector<std::string> argv = {"sbatch", "--parsable", "--no-requeue",
                                   fmt::format("--job-name={}", job_name),
                                   "--output=" + (spec.output.empty() ? "/dev/null" : spec.output)};
  if (!spec.partition.empty()) argv.push_back("--partition=" + spec.partition);
  if (!spec.gres.empty()) argv.push_back("--gres=" + spec.gres);
  if (spec.cpus > 0) argv.push_back(fmt::format("--cpus-per-task={}", spec.cpus));
  if (!spec.mem.empty()) argv.push_back("--mem=" + spec.mem);
  if (spec.time_limit > Duration{0}) argv.push_back("--time=" + slurm_time(spec.time_limit));
  argv.insert(argv.end(), spec.sbatch_args.begin(), spec.sbatch_args.end());
  return argv;
}

std::optional<uint64_t> parse_sbatch_output(std::string_view out) {
  out = trim(out);
  // Warnings may come first; the id is on the last line.
  if (const size_t nl = out.rfind('\n'); nl != std::string_view::npos) out = out.substr(nl + 1);
  return parse_number<uint64_t>(trim(out.substr(0, out.find(';'))));
}

std::string slurm_handle(uint64_t job) { return fmt::format("slurm job={}", job); }

std::optional<uint64_t> parse_slurm_handle(std::string_view handle) {
  constexpr std::string_view kPrefix = "slurm job=";
  if (!handle.starts_with(kPrefix)) return std::nullopt;
  const auto job = parse_number<uint64_t>(handle.substr(kPrefix.size()));
  if (!job || *job == 0) return std::nullopt;
  return job;
}

std::vector<SqueueRow> parse_squeue(std::string_view out) {
  std::vector<SqueueRow> rows;
  for_each_line(out, [&](std::string_view line) {
    const auto f = fields(line, 5);
    if (!f) return;
    const auto job = parse_number<uint64_t>(trim((*f)[0]));
    if (!job) return;
    SqueueRow row;
    row.job = *job;
    row.state = std::string(trim((*f)[1]));
    row.reason = std::string(trim((*f)[2]));
    const std::string_view node = trim((*f)[3]);
    if (node != "n/a" && node != "(null)") row.node = std::string(node);
    constexpr std::string_view kPort = "tide:port=";
    if (const std::string_view comment = trim((*f)[4]); comment.starts_with(kPort)) {
      const auto port = parse_number<int>(comment.substr(kPort.size()));
      if (port && *port > 0 && *port <= 65535) row.port = static_cast<uint16_t>(*port);
    }
    rows.push_back(std::move(row));
  });
  return rows;
}

JobPhase job_phase(std::string_view state) {
  if (state == "PENDING" || state == "REQUEUED" || state == "REQUEUE_HOLD" ||
      state == "REQUEUE_FED" || state == "RESV_DEL_HOLD")
    return JobPhase::kQueued;
  if (state == "RUNNING" || state == "CONFIGURING" || state == "SUSPENDED" || state == "STOPPED" ||
      state == "RESIZING" || state == "SIGNALING")
    return JobPhase::kStarted;
  return JobPhase::kEnded;
}

std::vector<std::pair<std::string, std::string>> parse_sinfo_nodes(std::string_view out) {
  std::vector<std::pair<std::string, std::string>> nodes;
  for_each_line(out, [&](std::string_view line) {
    const auto f = fields(line, 2);
    if (!f) return;
    const std::string_view name = trim((*f)[0]);
    const std::string_view addr = trim((*f)[1]);
    if (!name.empty() && !addr.empty()) nodes.emplace_back(name, addr);
  });
  return nodes;
}

bool scancel_found_nothing(std::string_view err) {
  return err.find("Invalid job id") != std::string_view::npos ||
         err.find("already completing or completed") != std::string_view::npos;
}

}  // namespace tide::provision::detail
