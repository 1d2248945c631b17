// The configuration of endpoints and worker groups, as parsed from YAML and validated.
//
// Plain values with defaults filled in: once `parse_config` returns, every field is valid and
// every preset has been expanded, so the rest of tide never re-checks them. Safe to copy and to
// share read-only between threads.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tide/common/random.h"
#include "tide/common/time.h"
#include "tide/metrics/engine_signals.h"

namespace tide::config {

using namespace std::chrono_literals;

// A duration drawn at random: the cold start of a replica, the pending time of a cluster job.
// YAML: `60s` (fixed) or {dist: uniform, min: 30s, max: 90s} | {dist: lognormal, median: 60s,
// sigma: 0.3} | {dist: empirical, values: [50s, 60s, 90s]} (each value equally likely).
struct DurationDistribution {
  enum class Kind { kFixed, kUniform, kLognormal, kEmpirical };
  Kind kind = Kind::kFixed;
  Duration value{0};             // kFixed
  Duration min{0};               // kUniform
  Duration max{0};               // kUniform
  Duration median{0};            // kLognormal
  double sigma = 0;              // kLognormal: standard deviation of the log
  std::vector<Duration> values;  // kEmpirical

  Duration sample(Random& rng) const;
  Duration mean() const;
};

// How long one request occupies a slot of a replica (simulator only).
// YAML: {model: fixed, value: 2s} | {model: lognormal, median: 1s, sigma: 0.5} |
// {model: tokens, prefill: 0.0002, decode: 0.02, base: 0s} (seconds per input / output token) |
// {model: trace} (the trace's duration column). A bare duration (`service_time: 2s`) is fixed.
struct ServiceTimeModel {
  enum class Kind { kFixed, kLognormal, kTokens, kTrace };
  Kind kind = Kind::kTrace;
  Duration value{0};     // kFixed
  Duration median{0};    // kLognormal
  double sigma = 0;      // kLognormal
  double prefill_s = 0;  // kTokens: seconds per input token
  double decode_s = 0;   // kTokens: seconds per output token
  Duration base{0};      // kTokens: fixed overhead per request
};

// Per-replica signals a target or step policy can track.
enum class Metric {
  kUtilization,  // nvidia-smi style: fraction of time a replica has >= 1 request in service
  kInFlight,     // requests in service per replica
  kQueue,        // requests waiting in the hold queue per replica
  kConcurrency,  // (in service + waiting) per replica: Knative's "observed concurrency"
  kRps,          // arriving requests per second per replica
  kLoad,         // work asked / capacity learned from served work (1 = at capacity); reported
                 // by the replicas' agents, else measured by the gateway (see metrics/load.h)
  // What the model servers themselves say (GroupSpec::engine_metrics, metrics/engine_signals.h),
  // per replica: requests waiting inside the engine (plus those held before it), requests in
  // its running batch, share of its KV cache in use (0..1). Where no replica's engine was read
  // (the simulator, a page not scraped yet): the held queue, the requests in service, and the
  // share of slots busy.
  kEngineWaiting,
  kEngineRunning,
  kEngineKvCache,
};
std::string_view metric_name(Metric m);

// queue: ViewComfy semantics. A replica starts whenever queued > queue_size x replicas; each
// replica stops after idle_timeout without work.
struct QueuePolicy {
  bool operator==(const QueuePolicy&) const = default;
  int queue_size = 1;
  Duration idle_timeout = 30s;
};

// One HPA scaling rule: at most `value` pods (or percent of current) per `period`.
struct RateLimit {
  bool operator==(const RateLimit&) const = default;
  enum class Type { kPods, kPercent };
  Type type = Type::kPods;
  double value = 0;
  Duration period = 15s;
};
// HPA `behavior.scaleUp|scaleDown`. No policies = no rate limit; select kDisabled = never scale in
// this direction.
struct ScalingRules {
  bool operator==(const ScalingRules&) const = default;
  Duration stabilization{0};
  std::vector<RateLimit> policies;
  enum class Select { kMax, kMin, kDisabled };
  Select select = Select::kMax;
};

// target: the Kubernetes HPA algorithm, ceil(current x metric / target), on any metric.
struct TargetPolicy {
  bool operator==(const TargetPolicy&) const = default;
  Metric metric = Metric::kUtilization;
  double target = 0.7;
  double tolerance = 0.1;
  Duration sync_period = 15s;    // how often a recommendation is computed
  Duration metric_window = 30s;  // the metric is averaged over this window (metrics-server-like)
  ScalingRules scale_up{0s,
                        {{RateLimit::Type::kPods, 4, 15s}, {RateLimit::Type::kPercent, 100, 15s}},
                        ScalingRules::Select::kMax};
  ScalingRules scale_down{
      300s, {{RateLimit::Type::kPercent, 100, 15s}}, ScalingRules::Select::kMax};
};

// concurrency: the Knative pod autoscaler (KPA).
struct ConcurrencyPolicy {
  bool operator==(const ConcurrencyPolicy&) const = default;
  double target = 0;  // requests per replica; 0 = 70% of the group's concurrency
  Duration stable_window = 60s;
  double panic_window_percentage = 10;  // panic window = stable_window x this / 100
  double panic_threshold_percentage = 200;
  double max_scale_up_rate = 1000;
  double max_scale_down_rate = 2;
  Duration scale_down_delay{0};
  Duration scale_to_zero_grace = 30s;
  Duration tick = 2s;  // Knative's autoscaler evaluates every 2 s; YAML `tick` sets
                       // both this and ScalingSpec::tick
};

// step: EC2 / SageMaker step scaling. The metric (averaged over `window`) falls in one band; the
// band's adjustment is applied, then a cooldown blocks the same direction. Bands never overlap; a
// metric in no band changes nothing.
struct Step {
  bool operator==(const Step&) const = default;
  std::optional<double> lower;  // inclusive; absent = -infinity
  std::optional<double> upper;  // exclusive; absent = +infinity
  double change = 0;            // adjustment: replicas (+/-), or percent, or exact count
};
struct StepPolicy {
  bool operator==(const StepPolicy&) const = default;
  Metric metric = Metric::kConcurrency;
  enum class Adjustment { kChange, kPercent, kExact };
  Adjustment adjustment = Adjustment::kChange;
  std::vector<Step> steps;
  Duration window = 60s;
  Duration cooldown_up = 60s;
  Duration cooldown_down = 300s;
};

// tide: the default policy (see docs/policies.md).
struct TidePolicy {
  bool operator==(const TidePolicy&) const = default;
  double target_wait_probability = 0.01;  // share of requests allowed to wait (sets the headroom)
  Duration idle_timeout{0};               // 0 = break-even: the group's mean cold start
  Duration demand_window = 20s;           // window of the surge detector (recent arrival rate)
  Duration keep_window{0};         // 0 = mean cold start: capacity kept this long after a peak
  Duration service_window = 5min;  // mean service time over the completions this recent
  Duration prewarm_period = 1h;    // longest period searched for recurring rises (0 = no pre-warm)
  int prewarm_cycles = 3;          // a rise pre-warms once seen in each of this many past periods
  Duration history_window = 1h;    // arrivals replayed for the warm fleet (0 = no warm headroom)
};

// Modifiers every policy shares. They run after the policy, in this order: bounds, idle scale to
// zero, hysteresis, up/down evaluation intervals, up/down delays.
struct Modifiers {
  bool operator==(const Modifiers&) const = default;
  std::optional<Duration> idle_timeout;  // whole group idle this long -> 0 (if min_replicas is 0)
  double hysteresis = 0;      // a scale-down applies only below current x (1 - hysteresis)
  Duration up_interval{0};    // scale up at most this often (0 = every tick)
  Duration down_interval{0};  // scale down at most this often
  Duration up_delay{0};       // a scale up must be recommended continuously this long first
  Duration down_delay{0};     // likewise for a scale down
};

enum class PolicyKind { kQueue, kTarget, kConcurrency, kStep, kTide };
std::string_view policy_name(PolicyKind p);

// What the gateway does with a request no replica can take right now.
struct Admission {
  bool operator==(const Admission&) const = default;
  bool hold = true;         // hold it in the endpoint's queue (tide's behaviour)
  int reject_status = 503;  // without hold: answer this when no replica is ready (hf: 502)
};

struct ScalingSpec {
  bool operator==(const ScalingSpec&) const = default;
  std::string preset;  // the preset this came from, "" if none
  PolicyKind policy = PolicyKind::kTide;
  QueuePolicy queue;
  TargetPolicy target;
  ConcurrencyPolicy concurrency;
  StepPolicy step;
  TidePolicy tide;
  Modifiers modifiers;
  Admission admission;
  Duration tick = 1s;    // how often the control loop observes and decides
  bool min_one = false;  // the peer cannot scale to zero (Kubernetes HPA)
};

// Names of the presets, in the order `tide sim --compare all` shows them.
const std::vector<std::string>& preset_names();
// The ScalingSpec of a preset, or nullopt for an unknown name.
std::optional<ScalingSpec> preset_spec(std::string_view name);

struct ReadyProbe {
  bool operator==(const ReadyProbe&) const = default;
  std::string path = "/health";
  Duration interval = 100ms;
  Duration timeout = 1s;
};

// kind slurm: each replica is a Slurm batch job (docs/slurm.md). Empty / 0 = the cluster's default.
struct SlurmSpec {
  bool operator==(const SlurmSpec&) const = default;
  std::string partition;                 // --partition
  std::string gres;                      // --gres, e.g. "gpu:1" (Slurm sets CUDA_VISIBLE_DEVICES)
  int cpus = 0;                          // --cpus-per-task
  std::string mem;                       // --mem, e.g. "32G"
  Duration time_limit{0};                // --time
  std::vector<std::string> sbatch_args;  // more sbatch options, e.g. "--account=ml"
  std::string output;                    // --output (%j: the job id); empty: /dev/null
  Duration poll_interval = 1s;           // how often squeue is read while the group has jobs
};

// Where replicas run. The simulator ignores everything but `kind` (and pending_timeout).
struct ProvisionerSpec {
  bool operator==(const ProvisionerSpec&) const = default;
  std::string kind = "local";        // local | static | slurm | kubernetes | simulated
  std::vector<std::string> command;  // local, slurm: argv with {port} and {replica_id}
  std::vector<std::string> urls;     // static
  ReadyProbe ready;
  std::vector<int> gpus;     // local: GPU pool handed out as CUDA_VISIBLE_DEVICES
  int gpus_per_replica = 0;  // local: from the pool; kubernetes: the limit of gpu_resource

  // kubernetes: one pod per replica, created through the API (docs/kubernetes.md).
  std::string kube_namespace = "default";  // YAML: namespace
  std::string kubeconfig;                  // "": in-cluster service account, else $KUBECONFIG
  std::string kube_context;                // YAML: context; "": the kubeconfig's current-context
  std::string pod_template;                // YAML: template, as JSON text ({metadata, spec})
  std::string container;                   // gets port, GPUs and TIDE_* env; "": the first
  int port = 0;                            // where that container listens on the pod IP
  std::string gpu_resource = "nvidia.com/gpu";

  // slurm, kubernetes: a replica still pending (queued, unschedulable) after this fails as "no
  // capacity" (replaced after a backoff; overflow routing moves on to another group meanwhile).
  // 0 = wait forever. The simulator applies it to the `pending` part of cold_start.
  Duration pending_timeout = std::chrono::minutes(5);
  SlurmSpec slurm;  // kind slurm (its keys sit beside the others in YAML)
};

// Whether replicas of this provisioner kind may first wait in a cluster's queue (slurm,
// kubernetes): ProvisionerSpec::pending_timeout applies to them, live and simulated.
inline bool queues_in_cluster(std::string_view kind) {
  return kind == "slurm" || kind == "kubernetes";
}

// The worker-side agent (`tide agent`) the local provisioner starts with each replica: it proxies
// the replica's requests, admits route tokens, and reports readiness and load.
// YAML: agent: {enabled: true, work: tokens, report_interval: 1s}
struct AgentSpec {
  bool operator==(const AgentSpec&) const = default;
  bool enabled = false;
  // The work measure of a request. tokens: prompt + completion tokens from the answer's `usage`
  // (1 per request when it has none); requests: 1 per request.
  enum class Work { kTokens, kRequests };
  Work work = Work::kTokens;
  Duration report_interval = 1s;
};

// The Prometheus page of each replica's model server (vLLM, TGI, SGLang), read for the engine
// metrics a target or step policy can scale on (Metric::kEngine*). The group's agent reads it
// where it runs one (and reports it), else tide serve's probe does; a failed read fails nothing:
// the replica's engine figures go stale and drop out of the group's.
// YAML: engine_metrics: {path: /metrics, kind: vllm, interval: 1s, timeout: 1s,
// max_bytes: 1048576}
struct EngineMetricsSpec {
  bool operator==(const EngineMetricsSpec&) const = default;
  bool enabled = false;  // the key is present
  std::string path = "/metrics";
  metrics::EngineKind kind = metrics::EngineKind::kVllm;
  Duration interval = 1s;       // between reads
  Duration timeout = 1s;        // connect, request and answer of one read
  int max_bytes = 1024 * 1024;  // a longer page is refused
};

// How running replicas move to a changed launch template, as a Kubernetes Deployment's rolling
// update: launch up to max_surge replicas above the group's desired count, wait until they are
// ready, drain as many of the old, repeat; never fewer ready than desired - max_unavailable.
// YAML: rollout: {max_surge: 1, max_unavailable: 0} (not both 0).
struct RolloutSpec {
  bool operator==(const RolloutSpec&) const = default;
  int max_surge = 1;
  int max_unavailable = 0;
};

// The most requests one replica may serve at once: more than any model server runs. The gateway
// keeps a list per busy count, so a typo of billions would cost it gigabytes.
inline constexpr int kMaxConcurrency = 100'000;
// The most replicas one group may run: more GPUs than one model's fleet holds. The simulator's
// fixed-fleet search runs a fleet this large, so a typo of billions would exhaust its memory.
inline constexpr int kMaxReplicas = 100'000;

struct GroupSpec {
  std::string name;
  ProvisionerSpec provisioner;
  AgentSpec agent;
  EngineMetricsSpec engine_metrics;
  RolloutSpec rollout;
  int min_replicas = 0;
  int max_replicas = 1;  // 1 to kMaxReplicas
  int concurrency = 1;   // 1 to kMaxConcurrency
  // Launch to ready = pending (queued in a cluster before the replica runs; 0 elsewhere) +
  // cold_start (boot: the process starts, loads the model, answers its probe).
  // YAML: `cold_start: 60s` or `cold_start: {pending: <distribution>, boot: <distribution>}`.
  DurationDistribution cold_start;
  DurationDistribution pending;
  std::optional<double> price;  // per replica-hour
  ServiceTimeModel service_time;
  ScalingSpec scaling;

  // The expected launch-to-ready time: mean pending + mean boot.
  Duration mean_cold_start() const { return pending.mean() + cold_start.mean(); }
};

// How a group's replicas are started, as text: the provisioner (command, URLs, GPUs, pod
// template, Slurm options, ...) and the agent, each field that differs from its default (a field
// added later does not change an older template's text). What only tide uses (the readiness
// probe, pending_timeout) does not count. A field of ProvisionerSpec, AgentSpec or
// EngineMetricsSpec that changes how a replica starts belongs in it (launch_template.cc).
std::string launch_template_text(const GroupSpec& g);
// Its hash (16 hex digits), kept with each replica in the state file: after a restart, replicas
// started from another template are replaced as after a change by PUT or SIGHUP.
std::string launch_template_fingerprint(const GroupSpec& g);
// Whether replicas of `a` and `b` are started the same way (equal launch_template_text). A
// changed launch template starts a rollout.
bool same_launch_template(const GroupSpec& a, const GroupSpec& b);

// The endpoint's service-level objective, one of: `max_wait`, the longest a request should wait
// before a replica starts it; or `ttft`, the longest from its arrival to the first token (the
// first byte of a streamed answer): the wait plus the replica's prefill.
struct SloSpec {
  Duration max_wait = 2s;
  std::optional<Duration> ttft;  // set: the SLO is on time to first token; max_wait is unused
};
// The longest a request may wait before it starts, as the deciders, the dispatcher's late count
// and overflow routing take it: max_wait; with a ttft SLO, ttft less `expected_prefill` (the
// mean prefill time of a request), never below 0. The one conversion of a ttft SLO.
Duration wait_budget(const SloSpec& slo, Duration expected_prefill);

struct QueueSpec {
  int max_length = 10000;   // beyond it: 429
  Duration timeout = 300s;  // held longer: 503
};

// How an endpoint's requests are shared among its groups (several groups only).
// YAML: {mode: split, weights: {new: 10, old: 90}, sticky_header: X-User}
//     | {mode: overflow, order: [big, small]}
struct RoutingSpec {
  enum class Mode { kSplit, kOverflow };
  Mode mode = Mode::kSplit;
  std::vector<double> weights;  // split: per group index; empty = equal shares
  std::string sticky_header;    // split: requests with this header stay on one group per value
  std::vector<int> order;       // overflow: group indexes, first preferred; empty = as listed
};

struct EndpointSpec {
  std::string name;
  // The endpoint as it was written (re-emitted YAML), kept with its history in the state file
  // and shown by the API; parse_endpoint(source) gives this spec back.
  std::string source;
  // The model names the endpoint answers to in the `model` field of OpenAI requests
  // (`POST /v1/chat/completions`, ...); unique across endpoints. YAML `models: [a, b]`; default:
  // the endpoint's name.
  std::vector<std::string> models;
  SloSpec slo;
  QueueSpec queue;
  RoutingSpec routing;
  std::vector<GroupSpec> groups;
};

// Whether `spec` answers to `model` (one of its `models`).
bool serves_model(const EndpointSpec& spec, std::string_view model);
// "model \"m\" is served by endpoint \"b\" already" for the first model of `e` that another
// endpoint among `others` (those not named like `e`) serves; nullopt when none does.
std::optional<std::string> model_clash(const EndpointSpec& e,
                                       const std::vector<const EndpointSpec*>& others);

// `tide serve`: where it listens and the limits that keep slow or hostile clients from holding
// resources forever.
// A listener's TLS: PEM files, read when `tide serve` starts and again on SIGHUP (docs/serve.md).
// YAML: tls: {cert_file: server.crt, key_file: server.key}
struct TlsSpec {
  std::string cert_file;  // the certificate chain, the server's own first
  std::string key_file;   // its private key, unencrypted
  bool enabled() const { return !cert_file.empty(); }
};

struct ServerSpec {
  std::string listen = "127.0.0.1:8080";
  std::string api = "127.0.0.1:8081";
  int threads = 0;                   // gateway threads (one io_context each); 0 = one per core
  int max_header_bytes = 16 * 1024;  // request line and headers; beyond: 431
  int64_t max_body_bytes = 16 * 1024 * 1024;  // request body; beyond: 413
  // A request body at the admin API (an endpoint's config): parsing megabytes of YAML would hold
  // a thread that also serves the gateway for seconds.
  int64_t api_max_body_bytes = 1024 * 1024;  // beyond: 413
  Duration read_timeout = 30s;       // to receive a whole request once it has begun; beyond: 408
  Duration idle_timeout = 60s;       // a keep-alive connection with no request is closed
  Duration upstream_timeout = 600s;  // from sending to a replica until its response is complete
  // Limits, checked while a request is read, before any authentication (docs/reliability.md).
  int max_connections = 10000;        // open gateway connections; beyond: 503 and closed
  int api_max_connections = 256;      // open admin API connections; beyond: 503 and closed
  int max_trailer_bytes = 16 * 1024;  // a chunk header line or the trailer; beyond: 431
  int64_t max_body_memory = 1024 * 1024 * 1024;  // request bodies held at once; beyond: 503
  // The admin API's bearer token (`Authorization: Bearer <token>`). Empty: TIDE_API_TOKEN, else
  // the one kept in the state file, else a new one generated and printed once.
  std::string api_token;
  // Reading (GET of the API, /metrics, the dashboard) without the token; changes always need it.
  bool public_read = false;
  // Whether GET /metrics needs the token. YAML metrics_auth: auto (the default: only when `api`
  // listens beyond loopback, so that a local Prometheus scrapes without one), token (always),
  // none (never).
  enum class MetricsAuth { kAuto, kToken, kNone };
  MetricsAuth metrics_auth = MetricsAuth::kAuto;
  // Whether the gateway wants a client API key (`Authorization: Bearer <key>`, keys added
  // through the admin API or `tide keys add`, kept hashed in the state file). YAML client_auth:
  // none (the default) or keys.
  enum class ClientAuth { kNone, kKeys };
  ClientAuth client_auth = ClientAuth::kNone;
  // HTTPS on the gateway's listener (`tls`) and the admin API's (`api_tls`); unset: plain HTTP.
  TlsSpec tls;
  TlsSpec api_tls;
};

// "auto", "token" or "none".
std::string_view metrics_auth_name(const ServerSpec& server);
// Whether GET /metrics needs the API token with this configuration (see metrics_auth).
bool metrics_need_token(const ServerSpec& server);

// What `tide serve` keeps across restarts (see src/tide/store/store.h).
// YAML: state: {path: tide-state.db, sample_interval: 5s, downsample_after: 6h,
//               downsample_step: 1m, retention: 30d}
struct StateSpec {
  std::string path = "tide-state.db";  // relative to the working directory; ":memory:" = none
  Duration sample_interval = 5s;       // history: one row per group this often
  Duration downsample_after = 6h;      // older samples merge into one row per downsample_step
  Duration downsample_step = 60s;
  Duration retention = 720h;  // history and decisions older than this are deleted
};

// Two-step routing: `POST /v1/route` hands out a replica's URL and a signed token.
// YAML: route: {token_ttl: 30s, key_file: tide-route.key, rotate_after: 24h}
struct RouteSpec {
  Duration token_ttl = 30s;  // how long a token may wait before its request reaches the agent
  // The signing keys (JSON, mode 0600). Empty: tide-route.key beside state.path; with state
  // ":memory:", in memory only (new keys at every start).
  std::string key_file;
  Duration rotate_after{0};  // a new signing key when the current one is this old; 0 = never
};

struct Config {
  ServerSpec server;
  StateSpec state;
  RouteSpec route;
  std::vector<EndpointSpec> endpoints;
};

// Every problem found, each as "path: problem" (e.g.
// "endpoints[0].groups[0].max_replicas: must be >= min_replicas (2), got 1"). A problem with no
// field path (a YAML syntax error: "line 3, column 5: ...", an unreadable file) is just the
// problem. what() is the problems joined by newlines, each line prefixed by "source: " when a
// source (a file name) is given; problems() never contains the source.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  ConfigError(std::vector<std::string> problems, std::string source);
  const std::vector<std::string>& problems() const { return problems_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<std::string> problems_;
  std::string source_;
};

// Parses and validates YAML text. `source` names the input in messages (a file name).
// Throws ConfigError listing every problem found.
Config parse_config(std::string_view yaml_text, std::string_view source = "config");
// Reads a file and parses it; a missing file is a ConfigError too.
Config load_config(const std::string& path);

// The configuration with every default filled in, as YAML for people (`tide validate`): the
// fields that shape serving and scaling, not every knob of every policy; tokens are not shown.
std::string effective_yaml(const Config& config);

// Parses one endpoint on its own, as written in the `endpoints:` list (YAML or JSON text), for
// `PUT /v1/endpoints/{name}`. Paths in messages start at `path`. Throws ConfigError.
EndpointSpec parse_endpoint(std::string_view text, std::string_view path = "endpoint");

// Parses a `scaling:` block on its own (for `tide sim --preset NAME` and the API): the block's
// content, e.g. "{preset: hf, idle_timeout: 5m}" or just "hf" (a bare preset name, also accepted
// as `scaling: hf` in a config). Empty text gives the `tide` preset. Paths in messages start at
// "scaling"; `group` is used for checks against the group (e.g. an in_flight target above its
// concurrency). Throws ConfigError.
ScalingSpec parse_scaling(std::string_view yaml_text, const GroupSpec& group);

}  // namespace tide::config
