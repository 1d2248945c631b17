#include "tide/agent/report.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "tide/net/address.h"

namespace tide::agent {

using json = nlohmann::json;

namespace {

constexpr double kMaxCount = 1e9;  // no replica serves more than this at once or per interval

// Reads fields of one JSON object, stopping at the first problem.
class Fields {
 public:
  Fields(const json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {}
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Takes the first problem of a nested object's fields.
  void adopt(const Fields& nested) {
    if (error_.empty()) error_ = nested.error();
  }
  void fail(std::string_view field, std::string_view problem) {
    if (error_.empty()) error_ = fmt::format("{}{}: {}", prefix_, field, problem);
  }
  const json* get(const char* field, bool required) {
    auto it = j_.find(field);
    if (it == j_.end() || it->is_null()) {
      if (required) fail(field, "required");
      return nullptr;
    }
    return &*it;
  }
  void string(const char* field, std::string& out, bool required, size_t max_len = 256) {
    const json* v = get(field, required);
    if (v == nullptr) return;
    if (!v->is_string()) return fail(field, fmt::format("must be a string, got {}", v->dump()));
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > max_len)
      return fail(field, fmt::format("must be at most {} characters, got {}", max_len, s.size()));
    out = s;
  }
  void number(const char* field, double& out, bool required, double lo, double hi) {
    const json* v = get(field, required);
    if (v == nullptr) return;
    if (!v->is_number()) return fail(field, fmt::format("must be a number, got {}", v->dump()));
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi)
      return fail(field, fmt::format("must be from {} to {}, got {}", lo, hi, v->dump()));
    out = d;
  }
  void number(const char* field, std::optional<double>& out, double lo, double hi) {
    double d = 0;
    if (get(field, false) == nullptr) return;
    number(field, d, false, lo, hi);
    if (ok()) out = d;
  }
  template <class Int>
  void integer(const char* field, Int& out, bool required, double lo, double hi) {
    const json* v = get(field, required);
    if (v == nullptr) return;
    if (!v->is_number_integer())
      return fail(field, fmt::format("must be an integer, got {}", v->dump()));
    const double d = v->is_number_unsigned() ? static_cast<double>(v->get<uint64_t>())
                                             : static_cast<double>(v->get<int64_t>());
    if (d < lo || d > hi)
      return fail(field, fmt::format("must be from {} to {}, got {}", lo, hi, v->dump()));
    out = v->is_number_unsigned() ? static_cast<Int>(v->get<uint64_t>())
                                  : static_cast<Int>(v->get<int64_t>());
  }
  void boolean(const char* field, bool& out) {
    const json* v = get(field, false);
    if (v == nullptr) return;
    if (!v->is_boolean())
      return fail(field, fmt::format("must be true or false, got {}", v->dump()));
    out = v->get<bool>();
  }

 private:
  const json& j_;
  std::string prefix_;
  std::string error_;
};

// host:port with a port above 0 and a host of printable characters that cannot start a path,
// query, fragment or user.
bool valid_host_port(std::string_view s) {
  const auto hp = net::split_host_port(s);
  if (!hp) return false;
  for (char c : hp->host) {
    if (c <= ' ' || c == '/' || c == '?' || c == '#' || c == '@' ||
        static_cast<unsigned char>(c) > 126)
      return false;
  }
  return hp->port > 0;
}

}  // namespace

std::string_view state_name(control::AgentState s) {
  switch (s) {
    case control::AgentState::kStarting:
      return "starting";
    case control::AgentState::kReady:
      return "ready";
    case control::AgentState::kUnhealthy:
      return "unhealthy";
  }
  return "starting";
}

std::string encode_report(const AgentReport& r) {
  json j = {{"endpoint", r.endpoint},
            {"replica_id", r.replica_id},
            {"state", state_name(r.state)},
            {"address", r.address},
            {"seq", r.seq},
            {"slots", r.slots},
            {"interval_s", r.interval_s},
            {"in_service", r.in_service},
            {"queued", r.queued},
            {"avg_in_service", r.avg_in_service},
            {"avg_queued", r.avg_queued},
            {"busy", r.busy},
            {"arrivals", r.arrivals},
            {"completed", r.completed},
            {"work", r.work},
            {"work_unit", r.work_unit},
            {"tokens_in", r.tokens_in},
            {"tokens_out", r.tokens_out},
            {"throughput", r.load.throughput},
            {"capacity", r.load.capacity},
            {"demand", r.load.demand},
            {"load", r.load.load},
            {"learned", r.load.learned},
            {"work_per_request", r.work_per_request},
            {"totals",
             {{"requests", r.total_requests},
              {"completed", r.total_completed},
              {"rejected", r.total_rejected},
              {"work", r.total_work},
              {"reports_failed", r.reports_failed}}}};
  if (!r.detail.empty()) j["detail"] = r.detail;
  if (r.latency_mean_s || r.latency_max_s) {
    json lat = json::object();
    if (r.latency_mean_s) lat["mean"] = *r.latency_mean_s;
    if (r.latency_max_s) lat["max"] = *r.latency_max_s;
    j["latency_s"] = std::move(lat);
  }
  if (!r.gpus.empty()) j["gpus"] = gpus_json(r.gpus);
  if (r.engine) j["engine"] = engine_json(*r.engine);
  return j.dump();
}

json engine_json(const metrics::EngineSignals& engine) {
  json j = json::object();
  if (engine.running) j["running"] = *engine.running;
  if (engine.waiting) j["waiting"] = *engine.waiting;
  if (engine.kv_cache) j["kv_cache"] = *engine.kv_cache;
  return j;
}

json gpus_json(const std::vector<GpuReading>& gpus) {
  json out = json::array();
  for (const GpuReading& g : gpus)
    out.push_back({{"index", g.index},
                   {"utilization", g.utilization},
                   {"memory_used_bytes", g.memory_used_bytes},
                   {"memory_total_bytes", g.memory_total_bytes}});
  return out;
}

namespace {

// Who sends the report: endpoint, replica, state, detail and address.
void read_identity(Fields& f, AgentReport& r) {
  f.string("endpoint", r.endpoint, true, 64);
  if (f.ok() && r.endpoint.empty()) f.fail("endpoint", "must not be empty");
  f.integer("replica_id", r.replica_id, true, 1, 9e15);
  std::string state;
  f.string("state", state, true, 16);
  if (f.ok()) {
    if (state == "starting") {
      r.state = control::AgentState::kStarting;
    } else if (state == "ready") {
      r.state = control::AgentState::kReady;
    } else if (state == "unhealthy") {
      r.state = control::AgentState::kUnhealthy;
    } else {
      f.fail("state", fmt::format("must be starting, ready or unhealthy, got \"{}\"", state));
    }
  }
  f.string("detail", r.detail, false, 1000);
  f.string("address", r.address, r.state == control::AgentState::kReady, 300);
  if (f.ok() && !r.address.empty() && !valid_host_port(r.address))
    f.fail("address", fmt::format("must be host:port, got \"{}\"", r.address));
}

// The interval's measures: sequence, slots, counts, averages, work and load.
void read_measures(Fields& f, AgentReport& r) {
  f.integer("seq", r.seq, true, 1, 9e15);
  f.integer("slots", r.slots, true, 1, 100000);
  f.number("interval_s", r.interval_s, true, 0, 3600);
  if (f.ok() && !(r.interval_s > 0)) f.fail("interval_s", "must be > 0");
  f.integer("in_service", r.in_service, true, 0, kMaxCount);
  f.integer("queued", r.queued, true, 0, kMaxCount);
  f.number("avg_in_service", r.avg_in_service, true, 0, kMaxCount);
  f.number("avg_queued", r.avg_queued, true, 0, kMaxCount);
  f.number("busy", r.busy, true, 0, 1);
  f.integer("arrivals", r.arrivals, true, 0, kMaxCount);
  f.integer("completed", r.completed, true, 0, kMaxCount);
  f.number("work", r.work, true, 0, 1e15);
  f.string("work_unit", r.work_unit, false, 16);
  if (f.ok() && r.work_unit != "tokens" && r.work_unit != "requests")
    f.fail("work_unit", fmt::format("must be tokens or requests, got \"{}\"", r.work_unit));
  f.integer("tokens_in", r.tokens_in, false, 0, 1e15);
  f.integer("tokens_out", r.tokens_out, false, 0, 1e15);
  f.number("throughput", r.load.throughput, true, 0, 1e15);
  f.number("capacity", r.load.capacity, true, 0, 1e15);
  f.number("demand", r.load.demand, true, 0, 1e15);
  f.number("load", r.load.load, true, 0, 1e6);
  f.boolean("learned", r.load.learned);
  f.number("work_per_request", r.work_per_request, false, 0, 1e12);
  if (f.ok() && !(r.work_per_request > 0)) f.fail("work_per_request", "must be > 0");
}

// The optional latency_s and totals objects.
void read_latency_and_totals(Fields& f, AgentReport& r) {
  if (const json* lat = f.get("latency_s", false); lat != nullptr && f.ok()) {
    if (!lat->is_object()) {
      f.fail("latency_s", "must be an object like {\"mean\": 1.2, \"max\": 3}");
    } else {
      Fields lf(*lat, "latency_s.");
      lf.number("mean", r.latency_mean_s, 0, 1e7);
      lf.number("max", r.latency_max_s, 0, 1e7);
      f.adopt(lf);
    }
  }
  if (const json* totals = f.get("totals", false); totals != nullptr && f.ok()) {
    if (!totals->is_object()) {
      f.fail("totals", "must be an object");
    } else {
      Fields tf(*totals, "totals.");
      tf.integer("requests", r.total_requests, false, 0, 9e18);
      tf.integer("completed", r.total_completed, false, 0, 9e18);
      tf.integer("rejected", r.total_rejected, false, 0, 9e18);
      tf.number("work", r.total_work, false, 0, 1e300);
      tf.integer("reports_failed", r.reports_failed, false, 0, 9e18);
      f.adopt(tf);
    }
  }
}

// The optional list of GPU readings.
void read_gpus(Fields& f, AgentReport& r) {
  if (const json* gpus = f.get("gpus", false); gpus != nullptr && f.ok()) {
    if (!gpus->is_array() || gpus->size() > 64) {
      f.fail("gpus", "must be a list of at most 64 GPUs");
    } else {
      for (size_t i = 0; i < gpus->size() && f.ok(); ++i) {
        const json& g = (*gpus)[i];
        const std::string at = fmt::format("gpus[{}]", i);
        if (!g.is_object()) {
          f.fail(at, "must be an object");
          break;
        }
        Fields gf(g, at + ".");
        GpuReading gr;
        gf.integer("index", gr.index, true, 0, 1024);
        gf.number("utilization", gr.utilization, true, 0, 1);
        gf.integer("memory_used_bytes", gr.memory_used_bytes, false, 0, 1.9e19);
        gf.integer("memory_total_bytes", gr.memory_total_bytes, false, 0, 1.9e19);
        f.adopt(gf);
        r.gpus.push_back(gr);
      }
    }
  }
}

// The optional engine object: what the model server's metrics page said.
void read_engine(Fields& f, AgentReport& r) {
  const json* e = f.get("engine", false);
  if (e == nullptr || !f.ok()) return;
  if (!e->is_object()) return f.fail("engine", "must be an object like {\"waiting\": 2}");
  Fields ef(*e, "engine.");
  metrics::EngineSignals s;
  ef.number("running", s.running, 0, 1e9);
  ef.number("waiting", s.waiting, 0, 1e9);
  ef.number("kv_cache", s.kv_cache, 0, 1);
  if (ef.ok() && !s.running && !s.waiting) ef.fail("running", "required (or waiting)");
  f.adopt(ef);
  if (ef.ok()) r.engine = s;
}

}  // namespace

ParsedReport parse_report(std::string_view text) {
  ParsedReport out;
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    out.error = "body: not valid JSON";
    return out;
  }
  if (!j.is_object()) {
    out.error = "body: must be a JSON object";
    return out;
  }
  AgentReport r;
  Fields f(j, "");
  read_identity(f, r);
  read_measures(f, r);
  read_latency_and_totals(f, r);
  read_gpus(f, r);
  read_engine(f, r);
  if (f.ok() && r.in_service > r.slots)
    f.fail("in_service", fmt::format("must be <= slots ({}), got {}", r.slots, r.in_service));
  if (!f.ok()) {
    out.error = f.error();
    return out;
  }
  out.report = std::move(r);
  return out;
}

control::ReplicaReport to_replica_report(const AgentReport& r) {
  control::ReplicaReport out;
  out.interval = from_seconds(r.interval_s);
  out.in_service = r.in_service;
  out.queued = r.queued;
  out.avg_in_service = r.avg_in_service;
  out.avg_queued = r.avg_queued;
  out.busy = r.busy;
  out.completions = r.completed;
  out.work_per_request = r.work_per_request;
  out.load = r.load;
  out.gpus = r.gpus;
  out.engine = r.engine;
  return out;
}

}  // namespace tide::agent
