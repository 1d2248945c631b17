// The kubernetes provisioner through LiveProvisioner, against a fake API server on 127.0.0.1
// (fake_kube_api.h) answering in the recorded format of tests/data/kubernetes, with the pods'
// "containers" served by FakePodServer. Conditions are awaited with a deadline, never a sleep.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "tide/provision/provision.h"
#include "tide/provision/test_util.h"
#include "tide/testing/fake_kube_api.h"

namespace tide::provision::testing {
namespace {

using json = nlohmann::json;
using Kind = Event::Kind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr const char* kNs = "ml";

class Events : public Recorder {
 public:
  void on_replica_handle(uint64_t id, std::string handle) override { handles[id] = handle; }
  std::map<uint64_t, std::string> handles;
};

class KubernetesProvisioner : public ::testing::Test {
 protected:
  void start(FakeKubeApi::Options o = {}) {
    api = std::make_unique<FakeKubeApi>(o);
    kubeconfig = api->write_kubeconfig(dir);
    restart_provisioner();
  }
  void restart_provisioner() {
    ProvisionOptions options;
    options.liveness_interval = 50ms;
    options.liveness_failures = 2;
    provisioner.reset();
    provisioner = std::make_unique<LiveProvisioner>(io, clock, options);
  }
  // The fake kubelet: every new pod runs at once on 127.0.0.1.
  void pods_run_at_once() {
    api->on_create([this](const std::string& ns, const std::string& name) {
      api->set_status(ns, name, "pod-running", "127.0.0.1");
    });
  }
  config::GroupSpec group() const {
    config::GroupSpec g;
    g.name = "h100";
    auto& p = g.provisioner;
    p.kind = "kubernetes";
    p.kube_namespace = kNs;
    p.kubeconfig = kubeconfig;
    p.port = pod_server.port();
    p.gpus_per_replica = 1;
    p.pending_timeout = 0s;
    p.ready.interval = 20ms;
    p.pod_template =
        R"({"metadata":{"labels":{"app":"chat"}},)"
        R"("spec":{"containers":[{"name":"model","image":"vllm/vllm-openai:v0.6.3"}]}})";
    return g;
  }
  control::Replica replica(uint64_t id) const {
    control::Replica r;
    r.id = id;
    r.name = "chat/h100/" + std::to_string(id);
    return r;
  }
  void launch(uint64_t id, const config::GroupSpec& g) {
    events.in_call = true;
    provisioner->launch(replica(id), g, events);
    events.in_call = false;
  }
  void launch(uint64_t id) { launch(id, group()); }
  void stop(uint64_t id) {
    events.in_call = true;
    provisioner->stop(replica(id));
    events.in_call = false;
  }
  bool wait_for(uint64_t id, Kind kind, Duration limit = 10s) {
    const bool ok = run_until(
        io, [&] { return events.has(id, kind); }, limit);
    if (!ok)
      ADD_FAILURE() << "no " << kind_name(kind) << " for " << id << ":\n"
                    << describe(events.events);
    return ok;
  }
  // Launches replica `id` and waits for it to fail; its error.
  std::string failed_launch(uint64_t id, const config::GroupSpec& g) {
    launch(id, g);
    return wait_for(id, Kind::kFailed) ? error_of(id) : "";
  }
  std::string failed_launch(uint64_t id) { return failed_launch(id, group()); }
  std::string error_of(uint64_t id) {
    const Event* e = events.find(id, Kind::kFailed);
    return e ? e->text : "";
  }
  // The pod of replica `id` as the API server has it.
  std::string pod_of(uint64_t id) {
    for (const auto& name : api->pod_names(kNs)) {
      if (api->pod(kNs, name)->at("metadata").at("labels").value("tide.dev/replica", "") ==
          std::to_string(id))
        return name;
    }
    return "";
  }
  void shutdown() {
    bool done = false;
    provisioner->shutdown([&] { done = true; });
    ASSERT_TRUE(run_until(io, [&] { return done; }));
  }

  boost::asio::io_context io;
  SteadyClock clock;
  std::string dir = make_temp_dir();
  FakePodServer pod_server;
  std::unique_ptr<FakeKubeApi> api;
  std::string kubeconfig;
  Events events;
  std::unique_ptr<LiveProvisioner> provisioner;
};

TEST_F(KubernetesProvisioner, ScalesUpToReadyPodsAndDownByDeletingExactlyTheStoppedOnes) {
  start();
  pods_run_at_once();
  for (uint64_t id = 1; id <= 3; ++id) launch(id);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(wait_for(id, Kind::kReady));
    EXPECT_THAT(events.kinds(id), ElementsAre(Kind::kStarting, Kind::kReady));
    EXPECT_EQ(events.find(id, Kind::kReady)->text,
              "127.0.0.1:" + std::to_string(pod_server.port()));
  }
  ASSERT_EQ(api->pod_names(kNs).size(), 3u);
  // What was created: the template with tide's labels, environment and GPU limit.
  const json created = api->created().at(0);
  EXPECT_EQ(created["metadata"]["labels"]["app"], "chat");
  EXPECT_EQ(created["metadata"]["labels"]["app.kubernetes.io/managed-by"], "tide");
  EXPECT_EQ(created["metadata"]["labels"]["tide.dev/group"], "h100");
  EXPECT_EQ(created["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], 1);
  EXPECT_THAT(created["metadata"]["name"].get<std::string>(), StartsWith("tide-chat-h100-"));
  // Each replica's handle names its pod and uid.
  const std::string pod2 = pod_of(2);
  EXPECT_EQ(events.handles[2],
            fmt::format("kubernetes pod=ml/{} uid={}", pod2,
                        api->pod(kNs, pod2)->at("metadata").at("uid").get<std::string>()));

  // Scale down: tide chose replica 2 after draining it; that very pod goes, the others stay.
  const std::string pod1 = pod_of(1);
  const std::string pod3 = pod_of(3);
  stop(2);
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).size() == 2; }));
  EXPECT_THAT(api->pod_names(kNs), ::testing::UnorderedElementsAre(pod1, pod3));
  EXPECT_EQ(api->count("DELETE"), 1);
  stop(2);  // twice, or unknown: nothing
  stop(99);

  shutdown();
  EXPECT_TRUE(api->pod_names(kNs).empty());
  for (uint64_t id = 1; id <= 3; ++id) EXPECT_FALSE(events.has(id, Kind::kFailed));
}

TEST_F(KubernetesProvisioner, ReadyOnlyOnceThePodRunsAndItsServerAnswersTheProbe) {
  start();
  pod_server.set_healthy(false);
  launch(1);
  ASSERT_TRUE(run_until(io, [&] { return !pod_of(1).empty(); }));
  const std::string pod = pod_of(1);
  // Pending, then scheduled with its container being created: starting only.
  api->set_status(kNs, pod, "pod-container-creating");
  const int probes = pod_server.probes();
  run_until(
      io, [] { return false; }, 200ms);
  EXPECT_THAT(events.kinds(1), ElementsAre(Kind::kStarting));
  EXPECT_EQ(pod_server.probes(), probes);  // nothing to probe before the pod has an IP
  // Running, but the model is still loading: probed, not ready.
  api->set_status(kNs, pod, "pod-running", "127.0.0.1");
  ASSERT_TRUE(run_until(io, [&] { return pod_server.probes() >= probes + 3; }));
  EXPECT_THAT(events.kinds(1), ElementsAre(Kind::kStarting));
  pod_server.set_healthy(true);
  ASSERT_TRUE(wait_for(1, Kind::kReady));
  // Ready, then its server stops answering: failed after the liveness failures, pod deleted.
  pod_server.set_healthy(false);
  ASSERT_TRUE(wait_for(1, Kind::kFailed));
  EXPECT_THAT(error_of(1), StartsWith("pod ml/" + pod + " (127.0.0.1:"));
  EXPECT_THAT(error_of(1), HasSubstr("health check failed 2 times: status 503"));
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));
}

TEST_F(KubernetesProvisioner, PodDeletedOrEvictedFromOutsideFailsItsReplica) {
  start();
  pods_run_at_once();
  launch(1);
  launch(2);
  ASSERT_TRUE(wait_for(1, Kind::kReady));
  ASSERT_TRUE(wait_for(2, Kind::kReady));
  const std::string pod1 = pod_of(1);
  const std::string pod2 = pod_of(2);
  api->remove(kNs, pod1);  // kubectl delete pod, a node drain
  ASSERT_TRUE(wait_for(1, Kind::kFailed));
  EXPECT_EQ(error_of(1), "pod ml/" + pod1 + " was deleted (not by tide)");
  api->set_status(kNs, pod2, "pod-evicted");
  ASSERT_TRUE(wait_for(2, Kind::kFailed));
  EXPECT_THAT(error_of(2), StartsWith("pod ml/" + pod2 +
                                      " failed: Evicted: The node was low on resource: memory."));
  // tide deletes the failed pod it leaves behind.
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));
  // The endpoint replaces a failed replica with a new launch: a new pod, a new name.
  launch(3);
  ASSERT_TRUE(wait_for(3, Kind::kReady));
  EXPECT_NE(pod_of(3), pod1);
}

TEST_F(KubernetesProvisioner, PodThatCannotStartFailsWithTheReason) {
  start();
  api->on_create([this](const std::string& ns, const std::string& name) {
    api->set_status(ns, name, "pod-image-pull-backoff", "127.0.0.1");
  });
  EXPECT_THAT(failed_launch(1), HasSubstr("cannot start: model: ImagePullBackOff: Back-off pulling "
                                          "image \"vllm/vllm-openai:v0.6.33\""));
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));
}

TEST_F(KubernetesProvisioner, UnschedulableLongerThanPendingTimeoutIsNoCapacity) {
  start();
  auto g = group();
  g.provisioner.pending_timeout = 300ms;
  api->on_create([this](const std::string& ns, const std::string& name) {
    api->set_status(ns, name, "pod-unschedulable");
  });
  const Time launched = clock.now();
  launch(1, g);
  ASSERT_TRUE(wait_for(1, Kind::kFailed));
  EXPECT_GE(events.find(1, Kind::kFailed)->time - launched, 300ms);
  EXPECT_THAT(error_of(1), StartsWith("no capacity: pod ml/"));
  EXPECT_THAT(error_of(1), HasSubstr(" not scheduled after 300ms: 0/3 nodes are available: "
                                     "1 node(s) had untolerated taint"));
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));

  // A pod that got a node but is slow to start is not a capacity problem.
  api->on_create([this](const std::string& ns, const std::string& name) {
    api->set_status(ns, name, "pod-container-creating");
  });
  launch(2, g);
  run_until(
      io, [] { return false; }, 600ms);
  EXPECT_THAT(events.kinds(2), ElementsAre(Kind::kStarting));
}

TEST_F(KubernetesProvisioner, StopWhileTheCreateIsInFlightDeletesThePodOnceCreated) {
  start();
  launch(1);
  stop(1);  // before the POST has even been sent
  ASSERT_TRUE(run_until(io, [&] { return api->count("POST") == 1 && api->count("DELETE") >= 1; }));
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));
  EXPECT_THAT(events.kinds(1), ElementsAre(Kind::kStarting));
}

TEST_F(KubernetesProvisioner, AdoptsItsPodsAfterARestartOfTide) {
  start();
  pods_run_at_once();
  launch(1);
  launch(2);
  ASSERT_TRUE(wait_for(1, Kind::kReady));
  ASSERT_TRUE(wait_for(2, Kind::kReady));
  const std::string handle1 = events.handles[1];
  const std::string handle2 = events.handles[2];
  ASSERT_THAT(handle1, StartsWith("kubernetes pod=ml/"));

  // tide dies (no shutdown: its pods stay), and replica 2's pod is deleted meanwhile.
  restart_provisioner();
  api->remove(kNs, pod_of(2));
  const int posts = api->count("POST");
  Events after;
  EXPECT_TRUE(provisioner->adopt(replica(1), group(), handle1, after));
  EXPECT_TRUE(provisioner->adopt(replica(2), group(), handle2, after));
  EXPECT_FALSE(provisioner->adopt(replica(3), group(), "local pid=1 start=2 port=3", after));
  ASSERT_TRUE(run_until(io, [&] {
    return after.has(1, Kind::kReady) && after.has(2, Kind::kFailed);
  })) << describe(after.events);
  EXPECT_THAT(after.kinds(1), ElementsAre(Kind::kStarting, Kind::kReady));
  EXPECT_EQ(after.find(1, Kind::kReady)->text, "127.0.0.1:" + std::to_string(pod_server.port()));
  EXPECT_THAT(after.find(2, Kind::kFailed)->text, HasSubstr(" is gone"));
  EXPECT_EQ(api->count("POST"), posts);  // nothing new was created

  // The adopted replica is followed and stopped like a launched one.
  const std::string pod1 = pod_of(1);
  provisioner->stop(replica(1));
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));
  EXPECT_FALSE(pod1.empty());
}

TEST_F(KubernetesProvisioner, ExpiredWatchIsListedAgainAndMissesNoDeletion) {
  start();
  pods_run_at_once();
  launch(1);
  launch(2);
  ASSERT_TRUE(wait_for(1, Kind::kReady));
  ASSERT_TRUE(wait_for(2, Kind::kReady));
  const int lists = api->count("GET");
  const int watches = api->watches();
  // The history is compacted and a pod deleted before tide can watch again: only the new list
  // can tell it is gone.
  const std::string pod1 = pod_of(1);
  api->remove(kNs, pod1);
  api->expire_watches();
  ASSERT_TRUE(wait_for(1, Kind::kFailed));
  EXPECT_THAT(error_of(1), StartsWith("pod ml/" + pod1));
  ASSERT_TRUE(run_until(io, [&] { return api->watches() > watches; }));
  EXPECT_GT(api->count("GET"), lists);
  // Still watching: a later change is seen.
  api->bookmark();
  api->remove(kNs, pod_of(2));
  ASSERT_TRUE(wait_for(2, Kind::kFailed));
  EXPECT_THAT(error_of(2), HasSubstr("was deleted (not by tide)"));
}

TEST_F(KubernetesProvisioner, BadApiAnswersFailTheLaunchWithTheApisWords) {
  start();
  api->fail_next("POST", 403, recorded("status-forbidden.json"));
  EXPECT_THAT(failed_launch(1),
              ::testing::MatchesRegex("cannot create pod ml/tide-chat-h100-1-[a-z0-9]{5}: HTTP 403 "
                                      "Forbidden: pods is forbidden: User "
                                      "\"system:serviceaccount:tide:tide\" cannot create "
                                      "resource \"pods\" .*"));
  api->fail_next("POST", 422, recorded("status-invalid.json"));
  EXPECT_THAT(failed_launch(2), HasSubstr(": HTTP 422 Invalid: Pod \"tide-chat-h100-3-k7x2p\" is "
                                          "invalid: spec.containers[0].env[0].value"));
  api->fail_next("POST", 500, "Internal Server Error\n");
  EXPECT_THAT(failed_launch(3), HasSubstr(": HTTP 500: Internal Server Error"));
  // A list answered by something that is not the API (a proxy's page): listed again later.
  restart_provisioner();
  api->fail_next("GET", 200, "<html>Sign in</html>");
  pods_run_at_once();
  launch(4);
  ASSERT_TRUE(wait_for(4, Kind::kReady));
  // A pod that cannot be deleted is retried.
  api->fail_next("DELETE", 503, recorded("status-too-many-requests.json"));
  ASSERT_FALSE(pod_of(4).empty());
  stop(4);
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).empty(); }));
  EXPECT_EQ(api->count("DELETE"), 2);
}

TEST_F(KubernetesProvisioner, WrongCredentialsOrNoServerAreNamedPlainly) {
  FakeKubeApi::Options o;
  o.token = "the-right-token";
  start(o);
  std::string text = read_file(kubeconfig);
  text.replace(text.find("the-right-token"), 15, "a-wrong-token");
  std::ofstream(kubeconfig) << text;
  EXPECT_THAT(failed_launch(1), HasSubstr(": HTTP 401 Unauthorized: Unauthorized"));

  auto g = group();
  g.provisioner.kubeconfig = dir + "/no-such-kubeconfig";
  launch(2, g);
  ASSERT_TRUE(wait_for(2, Kind::kFailed));
  EXPECT_EQ(error_of(2), "cannot read kubeconfig " + dir + "/no-such-kubeconfig");
  EXPECT_EQ(LiveProvisioner::check(g.provisioner),
            "cannot read kubeconfig " + dir + "/no-such-kubeconfig");
  EXPECT_EQ(LiveProvisioner::check(group().provisioner), "");

  // The API server is down.
  const std::string server = api->server();
  api.reset();
  std::ofstream(dir + "/down") << "current-context: x\nclusters: [{name: c, cluster: {server: \""
                               << server << "\"}}]\ncontexts: [{name: x, context: {cluster: c}}]\n";
  g.provisioner.kubeconfig = dir + "/down";
  EXPECT_THAT(failed_launch(3, g), HasSubstr(": connect 127.0.0.1:"));
  EXPECT_THAT(error_of(3), HasSubstr("Connection refused"));
}

TEST_F(KubernetesProvisioner, ListForbiddenFailsTheStartingReplicas) {
  start();
  api->fail_next("GET", 403, recorded("status-forbidden.json"));
  EXPECT_THAT(failed_launch(1), HasSubstr("cannot list pods in namespace ml: HTTP 403 Forbidden"));
}

TEST_F(KubernetesProvisioner, HttpsWithTheClusterCaAndAClientCertificate) {
  FakeKubeApi::Options o;
  o.tls = true;
  o.client_cert = true;
  o.token = "";
  start(o);
  pods_run_at_once();
  launch(1);
  ASSERT_TRUE(wait_for(1, Kind::kReady));

  // A server whose certificate the kubeconfig's CA did not sign is refused.
  FakeKubeApi::Options other;
  other.tls = true;
  FakeKubeApi impostor(other);
  std::string text = read_file(kubeconfig);
  text.replace(text.find(api->server()), api->server().size(), impostor.server());
  std::ofstream(dir + "/impostor") << text;
  auto g = group();
  g.provisioner.kubeconfig = dir + "/impostor";
  EXPECT_THAT(failed_launch(2, g), HasSubstr("TLS handshake with 127.0.0.1:"));
  EXPECT_THAT(error_of(2), HasSubstr("certificate verify failed"));
  shutdown();
}

TEST_F(KubernetesProvisioner, ShutdownDeletesEveryPodAndLaunchesAfterItFail) {
  start();
  pods_run_at_once();
  for (uint64_t id = 1; id <= 4; ++id) launch(id);
  ASSERT_TRUE(run_until(io, [&] { return api->pod_names(kNs).size() == 4; }));
  shutdown();
  EXPECT_TRUE(api->pod_names(kNs).empty());
  launch(5);
  ASSERT_TRUE(wait_for(5, Kind::kFailed));
  EXPECT_EQ(error_of(5), "provisioner is shutting down");
}

}  // namespace
}  // namespace tide::provision::testing
