// The kubernetes provisioner: a pod per replica, created from the group's template, followed by
// one list + watch per (cluster, namespace), probed by tide itself once it runs, deleted on stop.
#include "tide/provision/kubernetes.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "tide/net/address.h"
#include "tide/provision/kubernetes_client.h"

namespace tide::provision::detail {

using json = nlohmann::json;
using asio::awaitable;

namespace {

constexpr Duration kRequestTimeout = 30s;
constexpr int kWatchSeconds = 290;  // the server ends each watch after this; tide watches again
constexpr Duration kWatchIdle = std::chrono::seconds(kWatchSeconds + 60);
constexpr Duration kMaxBackoff = 30s;
constexpr int kDeleteAttempts = 3;
constexpr uint64_t kNotCreated = UINT64_MAX;
const std::string kNoBody;

void log_error(const std::string& line) {
  std::fprintf(stderr, "tide: kubernetes: %s\n", line.c_str());
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string pods_path(const std::string& ns) {
  return fmt::format("/api/v1/namespaces/{}/pods", ns);
}

void spawn(const Strand& strand, awaitable<void> work) {
  asio::co_spawn(strand, std::move(work), [](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      log_error(x.what());
    }
  });
}

}  // namespace

struct KubernetesBackend::Cluster {
  std::string key;
  std::shared_ptr<KubeClient> client;
  std::map<std::string, std::shared_ptr<Informer>> informers;  // by namespace
};

// Keeps a cache of tide's pods in one namespace from a list, then a watch from the list's
// resourceVersion; lists again when the watch expires (410 Gone) or breaks badly.
struct KubernetesBackend::Informer : std::enable_shared_from_this<Informer> {
  Informer(const Strand& strand, const Cluster& c, std::string n)
      : cluster_key(c.key), client(c.client), ns(std::move(n)), timer(strand) {}
  std::string cluster_key;
  std::shared_ptr<KubeClient> client;
  std::string ns;
  asio::steady_timer timer;
  bool synced = false;  // a list has been read
  bool stopped = false;
  std::string resource_version;
  std::unordered_map<std::string, kube::PodInfo> cache;  // by pod name
  std::string last_error;                                // logged once until it changes

  // Set by the backend.
  std::function<uint64_t()> create_seq;
  std::function<void(const kube::PodInfo&)> on_pod;
  std::function<void(const std::string& name, const std::string& uid)> on_gone;
  std::function<void(uint64_t list_seq)> on_listed;
  std::function<void(const std::string& error, bool permanent)> on_error;

  void stop() {
    stopped = true;
    timer.cancel();
  }

  // One watch event; false when the watch must end and a list be read again.
  bool on_event(std::string_view line) {
    const json event = json::parse(line, nullptr, false);
    if (!event.is_object() || !event.contains("type") || !event.contains("object")) {
      report(fmt::format("watch of pods in {}: not an event: {}", ns, line.substr(0, 200)), false);
      return false;
    }
    const std::string type = event["type"].is_string() ? event["type"].get<std::string>() : "";
    const json& object = event["object"];
    if (type == "ERROR") {
      // 410 Gone: the resourceVersion is too old; anything else is reported. Both relist.
      const bool expired = object.is_object() && object.value("code", 0) == 410;
      if (!expired)
        report(fmt::format("watch of pods in {}: {}", ns,
                           kube::describe_error(object.value("code", 0u), object.dump())),
               false);
      return false;
    }
    if (type == "BOOKMARK") {
      if (object.contains("metadata") && object["metadata"].is_object())
        resource_version = object["metadata"].value("resourceVersion", resource_version);
      return true;
    }
    kube::PodInfo info;
    try {
      info = kube::pod_info(object);
    } catch (const kube::KubeError& e) {
      report(fmt::format("watch of pods in {}: {} event: {}", ns, type, e.what()), false);
      return true;
    }
    if (!info.resource_version.empty()) resource_version = info.resource_version;
    if (type == "ADDED" || type == "MODIFIED") {
      cache[info.name] = info;
      on_pod(info);
    } else if (type == "DELETED") {
      cache.erase(info.name);
      on_gone(info.name, info.uid);
    }
    return !stopped;
  }

  void report(const std::string& error, bool permanent) {
    if (error != last_error) log_error(error);
    last_error = error;
    on_error(error, permanent);
  }

  static awaitable<void> run(std::shared_ptr<Informer> self) {
    const std::string list_path = fmt::format("{}?labelSelector={}", pods_path(self->ns),
                                              url_encode(kube::kManagedBySelector));
    Duration backoff = 1s;
    auto pause = [&]() -> awaitable<void> {
      self->timer.expires_after(backoff);
      co_await self->timer.async_wait(kNoThrow);
      backoff = std::min<Duration>(backoff * 2, kMaxBackoff);
    };
    while (!self->stopped) {
      const uint64_t seq = self->create_seq();
      const ApiResponse r =
          co_await self->client->request("GET", list_path, kNoBody, kRequestTimeout);
      if (self->stopped) co_return;
      const json list = r.ok() ? json::parse(r.body, nullptr, false) : json();
      if (!r.ok() || !list.is_object() || list.value("kind", "") != "PodList" ||
          !list.contains("items") || !list["items"].is_array()) {
        const bool permanent = r.status == 401 || r.status == 403 || r.status == 404;
        self->report(fmt::format("cannot list pods in namespace {}: {}", self->ns,
                                 r.ok() ? "the answer is not a PodList: " + r.body.substr(0, 200)
                                        : r.describe()),
                     permanent);
        co_await pause();
        continue;
      }
      self->cache.clear();
      for (const auto& item : list["items"]) {
        try {
          kube::PodInfo info = kube::pod_info(item);
          self->cache[info.name] = std::move(info);
        } catch (const kube::KubeError&) {
          // Not a pod tide can name: not one of its own.
        }
      }
      self->resource_version = list.contains("metadata") && list["metadata"].is_object()
                                   ? list["metadata"].value("resourceVersion", std::string())
                                   : std::string();
      self->synced = true;
      self->last_error.clear();
      backoff = 1s;
      const auto snapshot = self->cache;  // on_pod may fail replicas, never touches the cache
      for (const auto& [name, info] : snapshot) self->on_pod(info);
      self->on_listed(seq);

      bool relist = false;
      while (!self->stopped && !relist) {
        const std::string watch_path = fmt::format(
            "{}&watch=true&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={}",
            list_path, kWatchSeconds, url_encode(self->resource_version));
        // Named, not a temporary: see KubeClient::request.
        std::function<bool(std::string_view)> on_line = [weak = std::weak_ptr<Informer>(self),
                                                         &relist](std::string_view line) {
          auto me = weak.lock();
          if (!me || me->stopped) return false;
          if (!me->on_event(line)) relist = true;
          return !relist;
        };
        const ApiResponse w =
            co_await self->client->stream(watch_path, std::move(on_line), kWatchIdle);
        if (self->stopped) co_return;
        if (w.status == 410) {
          relist = true;
        } else if (w.status != 200 || !w.error.empty()) {
          const bool permanent = w.status == 401 || w.status == 403 || w.status == 404;
          self->report(fmt::format("cannot watch pods in namespace {}: {}", self->ns, w.describe()),
                       permanent);
          co_await pause();
          if (permanent) relist = true;
        } else {
          backoff = 1s;
        }
      }
    }
  }
};

struct KubernetesBackend::Pod {
  Pod(const Strand& strand, Launch l) : launch(std::move(l)), pending_timer(strand) {}
  Launch launch;
  std::shared_ptr<Cluster> cluster;
  std::shared_ptr<Informer> informer;
  std::string ns;
  std::string name;
  std::string uid;
  uint64_t created_seq = kNotCreated;  // 0 for an adopted pod
  bool creating = false;               // the create request is in flight
  bool done = false;                   // stopped or failed: nothing more is reported
  bool ready = false;
  bool scheduled = false;
  std::string unschedulable;
  std::shared_ptr<Watch> watch;
  asio::steady_timer pending_timer;

  std::string where() const { return fmt::format("pod {}/{}", ns, name); }
  std::string index() const { return fmt::format("{}|{}|{}", cluster->key, ns, name); }
};

KubernetesBackend::KubernetesBackend(std::shared_ptr<Core> core, kube::AccessSources sources)
    : core_(std::move(core)), sources_(std::move(sources)), random_(std::random_device{}()) {}

KubernetesBackend::~KubernetesBackend() = default;

std::shared_ptr<KubernetesBackend::Cluster> KubernetesBackend::cluster_for(
    const config::ProvisionerSpec& spec) {
  const std::string spec_key = spec.kubeconfig + "\n" + spec.kube_context;
  if (auto it = clusters_.find(spec_key); it != clusters_.end()) return it->second;
  kube::ClusterAccess access = kube::resolve_access(spec, sources_);
  // Two specs naming the same cluster and identity share a client and informers.
  for (const auto& [k, c] : clusters_) {
    if (c->key == access.key) {
      clusters_[spec_key] = c;
      return c;
    }
  }
  auto cluster = std::make_shared<Cluster>();
  cluster->key = access.key;
  cluster->client = std::make_shared<KubeClient>(core_->strand, std::move(access));
  clusters_[spec_key] = cluster;
  return cluster;
}

std::shared_ptr<KubernetesBackend::Informer> KubernetesBackend::informer_for(
    const std::shared_ptr<Cluster>& cluster, const std::string& ns) {
  if (auto it = cluster->informers.find(ns); it != cluster->informers.end()) return it->second;
  auto informer = std::make_shared<Informer>(core_->strand, *cluster, ns);
  std::weak_ptr<KubernetesBackend> weak = weak_from_this();
  Informer* raw = informer.get();
  informer->create_seq = [weak] {
    auto self = weak.lock();
    return self ? self->create_seq_ : 0;
  };
  informer->on_pod = [weak, raw](const kube::PodInfo& info) {
    if (auto self = weak.lock(); self && !self->core_->closed) self->on_pod(*raw, info);
  };
  informer->on_gone = [weak, raw](const std::string& name, const std::string& uid) {
    if (auto self = weak.lock(); self && !self->core_->closed) self->on_pod_gone(*raw, name, uid);
  };
  informer->on_listed = [weak, raw](uint64_t seq) {
    if (auto self = weak.lock(); self && !self->core_->closed) self->on_listed(*raw, seq);
  };
  informer->on_error = [weak, raw](const std::string& error, bool permanent) {
    if (auto self = weak.lock(); self && !self->core_->closed)
      self->on_list_error(*raw, error, permanent);
  };
  cluster->informers[ns] = informer;
  spawn(core_->strand, Informer::run(informer));
  return informer;
}

std::shared_ptr<KubernetesBackend::Pod> KubernetesBackend::find(const Informer& informer,
                                                                const std::string& name) const {
  const auto it =
      keys_by_pod_.find(fmt::format("{}|{}|{}", informer.cluster_key, informer.ns, name));
  if (it == keys_by_pod_.end()) return nullptr;
  const auto p = pods_.find(it->second);
  return p == pods_.end() ? nullptr : p->second;
}

void KubernetesBackend::track(const std::shared_ptr<Pod>& pod) {
  pods_[pod->launch.key] = pod;
  keys_by_pod_[pod->index()] = pod->launch.key;
  pod->informer = informer_for(pod->cluster, pod->ns);
  arm_pending_timer(pod);
}

void KubernetesBackend::launch(Launch l) {
  if (core_->closed) return;
  auto fail_now = [&](std::string error) {
    l.events->on_replica_failed(l.id, core_->clock.now(), std::move(error));
  };
  if (shutting_down_) return fail_now("provisioner is shutting down");
  if (pods_.count(l.key)) return;  // launched twice: keep the first
  std::shared_ptr<Cluster> cluster;
  try {
    cluster = cluster_for(l.spec);
  } catch (const kube::KubeError& e) {
    return fail_now(e.what());
  }
  static constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";  // as Kubernetes
  std::string suffix;
  for (int i = 0; i < 5; ++i) suffix += kAlphabet[random_.below(kAlphabet.size())];

  auto pod = std::make_shared<Pod>(core_->strand, std::move(l));
  pod->cluster = std::move(cluster);
  pod->ns = pod->launch.spec.kube_namespace;
  pod->name = kube::pod_name(pod->launch.name, pod->launch.id, suffix);
  track(pod);
  pod->launch.events->on_replica_starting(pod->launch.id, core_->clock.now());
  create(pod);
}

void KubernetesBackend::adopt(Launch l, const std::string& handle) {
  if (core_->closed) return;
  auto fail_now = [&](std::string error) {
    l.events->on_replica_failed(l.id, core_->clock.now(), std::move(error));
  };
  if (shutting_down_) return fail_now("provisioner is shutting down");
  if (pods_.count(l.key)) return;
  const auto h = kube::parse_handle(handle);
  if (!h) return fail_now(fmt::format("not a kubernetes handle: \"{}\"", handle));
  std::shared_ptr<Cluster> cluster;
  try {
    cluster = cluster_for(l.spec);
  } catch (const kube::KubeError& e) {
    return fail_now(e.what());
  }
  auto pod = std::make_shared<Pod>(core_->strand, std::move(l));
  pod->cluster = std::move(cluster);
  pod->ns = h->ns;
  pod->name = h->name;
  pod->uid = h->uid;
  pod->created_seq = 0;  // it existed before any list this run reads
  track(pod);
  pod->launch.events->on_replica_starting(pod->launch.id, core_->clock.now());
  // With the namespace already listed, the cache says at once whether the pod is still there.
  if (pod->informer->synced) {
    const auto it = pod->informer->cache.find(pod->name);
    if (it == pod->informer->cache.end()) {
      return fail(pod, fmt::format("{} is gone (deleted while tide was not running)", pod->where()),
                  false);
    }
    on_pod(*pod->informer, it->second);
  }
}

void KubernetesBackend::create(std::shared_ptr<Pod> pod) {
  std::string body;
  try {
    kube::PodRequest request;
    request.name = pod->name;
    request.replica_id = pod->launch.id;
    request.replica = pod->launch.name;
    request.spec = &pod->launch.spec;
    body = kube::build_pod(request);
  } catch (const std::exception& e) {
    return fail(
        pod, fmt::format("cannot build {} from provisioner.template: {}", pod->where(), e.what()),
        false);
  }
  pod->creating = true;
  ++operations_;
  spawn(core_->strand, run_create(shared_from_this(), std::move(pod), std::move(body)));
}

awaitable<void> KubernetesBackend::run_create(std::shared_ptr<KubernetesBackend> self,
                                              std::shared_ptr<Pod> pod, std::string body) {
  const std::string path = pods_path(pod->ns);
  const ApiResponse r = co_await pod->cluster->client->request("POST", path, body, kRequestTimeout);
  pod->creating = false;
  --self->operations_;
  if (self->core_->closed) co_return;
  if (r.ok()) {
    kube::PodInfo info;
    try {
      info = kube::pod_info(json::parse(r.body));
    } catch (const std::exception& e) {
      info.name = pod->name;  // created, though the answer is odd: the watch will tell
    }
    pod->created_seq = ++self->create_seq_;
    if (pod->done) {
      self->delete_pod(pod->cluster, pod->ns, pod->name);  // stopped while it was created
    } else {
      if (pod->uid.empty()) pod->uid = info.uid;
      pod->launch.events->on_replica_handle(pod->launch.id,
                                            kube::format_handle(pod->ns, pod->name, pod->uid));
      // The watch may have told of it already, and of a later state.
      const auto cached = pod->informer->cache.find(pod->name);
      self->on_pod(*pod->informer, cached != pod->informer->cache.end() ? cached->second : info);
    }
  } else if (r.status == 0) {
    // No answer: the pod may exist. Deleting by name is harmless if it does not.
    if (!pod->done)
      self->fail(pod, fmt::format("cannot create {}: {}", pod->where(), r.error), false);
    self->delete_pod(pod->cluster, pod->ns, pod->name);
  } else if (!pod->done) {
    self->fail(pod, fmt::format("cannot create {}: {}", pod->where(), r.describe()), false);
  }
  self->maybe_finish_shutdown();
}

void KubernetesBackend::arm_pending_timer(const std::shared_ptr<Pod>& pod) {
  const Duration timeout = pod->launch.spec.pending_timeout;
  if (timeout <= Duration::zero()) return;
  pod->pending_timer.expires_after(timeout);
  std::weak_ptr<KubernetesBackend> weak = weak_from_this();
  pod->pending_timer.async_wait([weak, pod_weak = std::weak_ptr<Pod>(pod)](auto ec) {
    auto self = weak.lock();
    auto p = pod_weak.lock();
    if (ec || !self || !p || self->core_->closed) return;
    self->on_pending_timeout(p);
  });
}

void KubernetesBackend::on_pending_timeout(const std::shared_ptr<Pod>& pod) {
  if (pod->done || pod->watch || pod->scheduled) return;  // placed on a node: not capacity
  fail(pod,
       fmt::format("no capacity: {} not scheduled after {}{}", pod->where(),
                   format_duration(pod->launch.spec.pending_timeout),
                   pod->unschedulable.empty() ? " (still Pending)" : ": " + pod->unschedulable));
}

void KubernetesBackend::on_pod(Informer& informer, const kube::PodInfo& info) {
  auto pod = find(informer, info.name);
  if (!pod || pod->done) return;
  if (!pod->uid.empty() && !info.uid.empty() && info.uid != pod->uid) {
    return fail(pod, fmt::format("{} is gone (another pod has its name now)", pod->where()), false);
  }
  if (pod->uid.empty()) pod->uid = info.uid;
  pod->scheduled = info.scheduled;
  pod->unschedulable = info.unschedulable;
  const kube::PodVerdict verdict = kube::judge(info, pod->ns);
  switch (verdict.kind) {
    case kube::PodVerdict::Kind::kFailed:
      return fail(pod, verdict.text, !info.deleting);
    case kube::PodVerdict::Kind::kRunning:
      if (!pod->watch) start_probe(pod, verdict.text);
      return;
    case kube::PodVerdict::Kind::kWaiting:
      return;
  }
}

void KubernetesBackend::on_pod_gone(Informer& informer, const std::string& name,
                                    const std::string& uid) {
  auto pod = find(informer, name);
  if (!pod || pod->done) return;
  if (!pod->uid.empty() && !uid.empty() && uid != pod->uid) return;  // an older pod of that name
  fail(pod, fmt::format("{} was deleted (not by tide)", pod->where()), false);
}

void KubernetesBackend::on_listed(Informer& informer, uint64_t list_seq) {
  std::vector<std::shared_ptr<Pod>> missing;
  for (const auto& [key, pod] : pods_) {
    if (pod->informer.get() != &informer || pod->done) continue;
    // Only a pod created before the list was asked for must be in it.
    if (pod->created_seq > list_seq) continue;
    if (!informer.cache.count(pod->name)) missing.push_back(pod);
  }
  for (const auto& pod : missing) {
    fail(pod,
         fmt::format("{} is gone (not in the namespace's pod list: deleted while tide was not "
                     "watching)",
                     pod->where()),
         false);
  }
}

void KubernetesBackend::on_list_error(Informer& informer, const std::string& error,
                                      bool permanent) {
  if (!permanent) return;  // retried with backoff; ready replicas are probed directly anyway
  std::vector<std::shared_ptr<Pod>> waiting;
  for (const auto& [key, pod] : pods_) {
    if (pod->informer.get() == &informer && !pod->done && !pod->ready) waiting.push_back(pod);
  }
  for (const auto& pod : waiting) fail(pod, fmt::format("{}: {}", pod->where(), error));
}

void KubernetesBackend::start_probe(const std::shared_ptr<Pod>& pod, const std::string& ip) {
  pod->pending_timer.cancel();
  const config::ProvisionerSpec& spec = pod->launch.spec;
  ProbeTarget target{ip, static_cast<uint16_t>(spec.port), spec.ready,
                     core_->options.liveness_interval, core_->options.liveness_failures};
  pod->watch = std::make_shared<Watch>(core_->strand, std::move(target));
  read_engine_metrics(*pod->watch, pod->launch, core_);
  std::weak_ptr<KubernetesBackend> weak = weak_from_this();
  std::weak_ptr<Pod> pod_weak = pod;
  const std::string address = net::join_host_port(ip, static_cast<uint16_t>(spec.port));
  pod->watch->start(
      [weak, pod_weak, address] {
        auto self = weak.lock();
        auto p = pod_weak.lock();
        if (!self || !p || p->done || self->core_->closed) return;
        p->ready = true;
        p->launch.events->on_replica_ready(p->launch.id, self->core_->clock.now(), address);
      },
      [weak, pod_weak, address](std::string why) {
        auto self = weak.lock();
        auto p = pod_weak.lock();
        if (!self || !p || p->done || self->core_->closed) return;
        self->fail(p, fmt::format("{} ({}): {}", p->where(), address, why));
      });
}

void KubernetesBackend::forget(const std::shared_ptr<Pod>& pod) {
  pod->done = true;
  if (pod->watch) pod->watch->cancel();
  pod->pending_timer.cancel();
  if (auto it = pods_.find(pod->launch.key); it != pods_.end() && it->second == pod)
    pods_.erase(it);
  if (auto it = keys_by_pod_.find(pod->index());
      it != keys_by_pod_.end() && it->second == pod->launch.key)
    keys_by_pod_.erase(it);
}

void KubernetesBackend::fail(const std::shared_ptr<Pod>& pod, std::string error, bool delete_it) {
  if (pod->done) return;
  forget(pod);
  if (delete_it && !pod->creating) delete_pod(pod->cluster, pod->ns, pod->name);
  if (!core_->closed)
    pod->launch.events->on_replica_failed(pod->launch.id, core_->clock.now(), std::move(error));
}

void KubernetesBackend::stop(const std::string& key) {
  const auto it = pods_.find(key);
  if (it == pods_.end()) return;
  const std::shared_ptr<Pod> pod = it->second;
  forget(pod);
  if (!pod->creating) delete_pod(pod->cluster, pod->ns, pod->name);  // else once it is created
}

void KubernetesBackend::delete_pod(std::shared_ptr<Cluster> cluster, std::string ns,
                                   std::string name) {
  ++operations_;
  spawn(core_->strand,
        run_delete(shared_from_this(), std::move(cluster), std::move(ns), std::move(name)));
}

awaitable<void> KubernetesBackend::run_delete(std::shared_ptr<KubernetesBackend> self,
                                              std::shared_ptr<Cluster> cluster, std::string ns,
                                              std::string name) {
  const std::string path = fmt::format("{}/{}", pods_path(ns), name);
  asio::steady_timer timer(self->core_->strand);
  Duration backoff = 1s;
  std::string error;
  const int attempts = self->shutting_down_ ? 1 : kDeleteAttempts;
  for (int attempt = 0; attempt < attempts && !self->core_->closed; ++attempt) {
    const ApiResponse r =
        co_await cluster->client->request("DELETE", path, kNoBody, kRequestTimeout);
    if (r.ok() || r.status == 404) {
      error.clear();
      break;
    }
    error = r.describe();
    if (attempt + 1 < attempts) {
      timer.expires_after(backoff);
      co_await timer.async_wait(kNoThrow);
      backoff *= 2;
    }
  }
  if (!error.empty() && !self->core_->closed)
    log_error(fmt::format("cannot delete pod {}/{}: {}", ns, name, error));
  --self->operations_;
  self->maybe_finish_shutdown();
}

void KubernetesBackend::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  if (done) shutdown_done_.push_back(std::move(done));
  std::vector<std::string> keys;
  for (const auto& [key, pod] : pods_) keys.push_back(key);
  for (const auto& key : keys) stop(key);
  maybe_finish_shutdown();
}

void KubernetesBackend::maybe_finish_shutdown() {
  if (!shutting_down_ || operations_ > 0) return;
  std::set<Cluster*> seen;
  for (const auto& [k, cluster] : clusters_) {
    if (!seen.insert(cluster.get()).second) continue;
    for (auto& [ns, informer] : cluster->informers) informer->stop();
    cluster->client->cancel_all();
  }
  auto done = std::move(shutdown_done_);
  shutdown_done_.clear();
  for (auto& d : done) d();
}

void KubernetesBackend::close() {
  for (const auto& [key, pod] : pods_) {
    pod->done = true;
    if (pod->watch) pod->watch->cancel();
    pod->pending_timer.cancel();
  }
  pods_.clear();
  keys_by_pod_.clear();
  for (const auto& [k, cluster] : clusters_) {
    for (auto& [ns, informer] : cluster->informers) informer->stop();
    cluster->client->cancel_all();
  }
}

}  // namespace tide::provision::detail
