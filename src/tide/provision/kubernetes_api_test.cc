// The plain parts of the kubernetes provisioner: cluster access, pods tide creates, what the
// recorded API answers (tests/data/kubernetes) mean.
#include "tide/provision/kubernetes_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tide/testing/fake_kube_api.h"

namespace tide::provision::kube {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using testing::recorded;
using ::testing::StartsWith;

std::string temp_dir() {
  std::string pattern = ::testing::TempDir() + "tide_kube_XXXXXX";
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  return pattern;
}

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// The message a KubeError carries, or "" when `f` does not throw one.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const KubeError& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kKubeconfig = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: prod-cluster
  cluster:
    server: https://10.0.0.1:6443/k8s/clusters/c-1/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFCQwo=
    tls-server-name: kubernetes.default
- name: dev-cluster
  cluster:
    server: https://[fd00::1]
    certificate-authority: certs/ca.crt
contexts:
- name: prod
  context: {cluster: prod-cluster, user: sa, namespace: ml}
- name: dev
  context: {cluster: dev-cluster, user: cert}
users:
- name: sa
  user:
    token: abc.def
- name: cert
  user:
    client-certificate: certs/client.crt
    client-key-data: a2V5Cg==
)";

TEST(Kubeconfig, ReadsTheCurrentOrNamedContext) {
  const std::string dir = temp_dir();
  fs::create_directories(dir + "/certs");
  write(dir + "/certs/ca.crt", "CA PEM");
  write(dir + "/certs/client.crt", "CERT PEM");
  const std::string path = write(dir + "/config", kKubeconfig);

  const ClusterAccess dev = parse_kubeconfig(kKubeconfig, path, "");
  EXPECT_TRUE(dev.tls);
  EXPECT_EQ(dev.host, "fd00::1");
  EXPECT_EQ(dev.port, 443);
  EXPECT_EQ(dev.ca_pem, "CA PEM");  // relative to the kubeconfig's directory
  EXPECT_EQ(dev.client_cert_pem, "CERT PEM");
  EXPECT_EQ(dev.client_key_pem, "key\n");
  EXPECT_EQ(dev.token, "");
  EXPECT_EQ(dev.description, "kubeconfig " + path + " (context dev)");

  const ClusterAccess prod = parse_kubeconfig(kKubeconfig, path, "prod");
  EXPECT_EQ(prod.host, "10.0.0.1");
  EXPECT_EQ(prod.port, 6443);
  EXPECT_EQ(prod.base_path, "/k8s/clusters/c-1");
  EXPECT_EQ(prod.ca_pem, "-----BEGIN CERTIFICATE-----\nABC\n");
  EXPECT_EQ(prod.tls_server_name, "kubernetes.default");
  EXPECT_EQ(bearer_token(prod), "abc.def");
  EXPECT_NE(prod.key, dev.key);
}

TEST(Kubeconfig, ProblemsNameTheFileAndField) {
  const std::string p = "/etc/kc";
  EXPECT_EQ(error_of([&] { parse_kubeconfig(kKubeconfig, p, "staging"); }),
            "kubeconfig /etc/kc: no context named \"staging\"");
  EXPECT_EQ(error_of([&] { parse_kubeconfig("clusters: [", p, ""); }),
            "kubeconfig /etc/kc: line 1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(error_of([&] { parse_kubeconfig("kind: Config", p, ""); }),
            "kubeconfig /etc/kc: no current-context (set provisioner.context)");
  const std::string exec = R"(current-context: gke
clusters: [{name: c, cluster: {server: "https://1.2.3.4"}}]
contexts: [{name: gke, context: {cluster: c, user: u}}]
users: [{name: u, user: {exec: {command: gke-gcloud-auth-plugin}}}])";
  EXPECT_EQ(error_of([&] { parse_kubeconfig(exec, p, ""); }),
            "kubeconfig /etc/kc: users[u].user.exec: not supported (use a bearer token, a "
            "tokenFile or a client certificate, e.g. of a service account)");
  const std::string bad_server = R"(current-context: x
clusters: [{name: c, cluster: {server: "10.0.0.1:6443"}}]
contexts: [{name: x, context: {cluster: c}}])";
  EXPECT_EQ(error_of([&] { parse_kubeconfig(bad_server, p, ""); }),
            "kubeconfig /etc/kc: clusters[c].cluster.server: expected https://host[:port], got "
            "\"10.0.0.1:6443\"");
  const std::string bad_ca = R"(current-context: x
clusters: [{name: c, cluster: {server: "https://h", certificate-authority-data: "!!"}}]
contexts: [{name: x, context: {cluster: c}}])";
  EXPECT_EQ(error_of([&] { parse_kubeconfig(bad_ca, p, ""); }),
            "kubeconfig /etc/kc: clusters[c].cluster.certificate-authority-data: not valid "
            "base64");
  const std::string missing_file = R"(current-context: x
clusters: [{name: c, cluster: {server: "https://h", certificate-authority: /nonexistent/ca}}]
contexts: [{name: x, context: {cluster: c}}])";
  EXPECT_EQ(error_of([&] { parse_kubeconfig(missing_file, p, ""); }),
            "kubeconfig /etc/kc: clusters[c].cluster.certificate-authority: cannot read "
            "/nonexistent/ca");
  const std::string half_cert = R"(current-context: x
clusters: [{name: c, cluster: {server: "https://h"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {client-certificate-data: YQ==}}])";
  EXPECT_EQ(error_of([&] { parse_kubeconfig(half_cert, p, ""); }),
            "kubeconfig /etc/kc: users[u].user: a client certificate needs both "
            "client-certificate and client-key");
}

TEST(ClusterAccess, InClusterServiceAccountWithARotatedToken) {
  const std::string dir = temp_dir();
  write(dir + "/ca.crt", "CLUSTER CA");
  write(dir + "/token", "token-1\n");
  std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                            {"KUBERNETES_SERVICE_PORT", "443"}};
  AccessSources sources;
  sources.service_account_dir = dir;
  sources.getenv = [&](const char* name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  config::ProvisionerSpec spec;
  spec.kind = "kubernetes";
  const ClusterAccess a = resolve_access(spec, sources);
  EXPECT_EQ(a.description, "in-cluster service account");
  EXPECT_EQ(a.host, "10.96.0.1");
  EXPECT_EQ(a.port, 443);
  EXPECT_EQ(a.ca_pem, "CLUSTER CA");
  EXPECT_EQ(bearer_token(a), "token-1");
  write(dir + "/token", "token-2");  // the kubelet rotates projected tokens
  EXPECT_EQ(bearer_token(a), "token-2");

  env["KUBERNETES_SERVICE_HOST"] = "fd00:10:96::1";
  env["KUBERNETES_SERVICE_PORT"] = "6443";
  const ClusterAccess v6 = resolve_access(spec, sources);
  EXPECT_EQ(v6.host, "fd00:10:96::1");
  EXPECT_EQ(v6.port, 6443);

  spec.kube_context = "prod";
  EXPECT_THAT(error_of([&] { resolve_access(spec, sources); }),
              StartsWith("provisioner.context: needs provisioner.kubeconfig"));
  spec.kube_context = "";
  fs::remove(dir + "/token");
  EXPECT_EQ(error_of([&] { resolve_access(spec, sources); }),
            "cannot read token file " + dir + "/token");

  // Nothing at all to go by.
  env.clear();
  env["HOME"] = dir;
  EXPECT_EQ(error_of([&] { resolve_access(spec, sources); }),
            "no Kubernetes cluster to talk to: set provisioner.kubeconfig, or run tide in a pod "
            "(KUBERNETES_SERVICE_HOST is not set, nor KUBECONFIG, and there is no "
            "~/.kube/config)");
  spec.kubeconfig = dir + "/missing";
  EXPECT_EQ(error_of([&] { resolve_access(spec, sources); }),
            "cannot read kubeconfig " + dir + "/missing");
}

// ---- pods ------------------------------------------------------------------------------------

PodInfo recorded_pod(const std::string& name) {
  return pod_info(json::parse(recorded(name + ".json")));
}

TEST(PodStatus, RecordedAnswersMeanWhatTheySay) {
  using Kind = PodVerdict::Kind;
  const PodInfo created = recorded_pod("pod-created");
  EXPECT_EQ(created.name, "tide-chat-h100-3-k7x2p");
  EXPECT_EQ(created.uid, "5b8c1e0e-3f0a-4c8e-9d2f-7a6b1c2d3e4f");
  EXPECT_EQ(created.resource_version, "48213");
  EXPECT_FALSE(created.scheduled);
  EXPECT_EQ(judge(created, "ml").kind, Kind::kWaiting);

  const PodInfo unschedulable = recorded_pod("pod-unschedulable");
  EXPECT_FALSE(unschedulable.scheduled);
  EXPECT_THAT(unschedulable.unschedulable,
              StartsWith("0/3 nodes are available: 1 node(s) had untolerated taint"));
  EXPECT_THAT(unschedulable.unschedulable, HasSubstr("2 Insufficient nvidia.com/gpu"));
  EXPECT_EQ(judge(unschedulable, "ml").kind, Kind::kWaiting);

  const PodInfo creating = recorded_pod("pod-container-creating");
  EXPECT_TRUE(creating.scheduled);
  EXPECT_EQ(judge(creating, "ml").kind, Kind::kWaiting);

  const PodVerdict running = judge(recorded_pod("pod-running"), "ml");
  EXPECT_EQ(running.kind, Kind::kRunning);
  EXPECT_EQ(running.text, "10.244.1.23");

  const PodVerdict evicted = judge(recorded_pod("pod-evicted"), "ml");
  EXPECT_EQ(evicted.kind, Kind::kFailed);
  EXPECT_EQ(evicted.text,
            "pod ml/tide-chat-h100-3-k7x2p failed: Evicted: The node was low on resource: memory. "
            "Threshold quantity: 100Mi, available: 92416Ki. Container model was using "
            "71854000Ki, request is 0, has larger consumption of memory. ");

  EXPECT_EQ(judge(recorded_pod("pod-image-pull-backoff"), "ml").text,
            "pod ml/tide-chat-h100-3-k7x2p cannot start: model: ImagePullBackOff: Back-off "
            "pulling image \"vllm/vllm-openai:v0.6.33\"");
  const PodInfo crash = recorded_pod("pod-crash-loop");
  EXPECT_EQ(crash.terminated, "model: exit code 1 (Error)");
  EXPECT_THAT(judge(crash, "ml").text,
              StartsWith("pod ml/tide-chat-h100-3-k7x2p cannot start: model: CrashLoopBackOff: "
                         "back-off 40s restarting failed container=model"));
  EXPECT_EQ(judge(recorded_pod("pod-terminating"), "ml").text,
            "pod ml/tide-chat-h100-3-k7x2p is being deleted (not by tide)");

  const json list = json::parse(recorded("pod-list.json"));
  EXPECT_EQ(list["kind"], "PodList");
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(judge(pod_info(list["items"][0]), "ml").kind, Kind::kRunning);
  EXPECT_THROW(pod_info(json::parse(R"({"kind":"Pod","metadata":{}})")), KubeError);
}

TEST(PodStatus, RecordedWatchEventsCarryPodsAndResourceVersions) {
  std::istringstream lines(recorded("watch-events.jsonl"));
  std::vector<std::string> seen;
  for (std::string line; std::getline(lines, line);) {
    const json event = json::parse(line);
    const std::string type = event["type"];
    const std::string rv = event["object"]["metadata"]["resourceVersion"];
    if (type == "BOOKMARK") {
      seen.push_back(type + " " + rv);
      continue;
    }
    const PodInfo pod = pod_info(event["object"]);
    seen.push_back(type + " " + rv + " " + pod.phase + (pod.deleting ? " deleting" : ""));
  }
  EXPECT_THAT(seen, ::testing::ElementsAre("ADDED 48214 Pending", "MODIFIED 48220 Pending",
                                           "MODIFIED 48251 Running", "BOOKMARK 48390",
                                           "MODIFIED 48400 Running deleting",
                                           "DELETED 48412 Running deleting"));
  const json expired = json::parse(recorded("watch-expired.jsonl"));
  EXPECT_EQ(expired["type"], "ERROR");
  EXPECT_EQ(expired["object"]["code"], 410);
}

TEST(ApiErrors, StatusObjectsAreDescribedByTheirMessage) {
  EXPECT_EQ(describe_error(403, recorded("status-forbidden.json")),
            "HTTP 403 Forbidden: pods is forbidden: User \"system:serviceaccount:tide:tide\" "
            "cannot create resource \"pods\" in API group \"\" in the namespace \"ml\"");
  EXPECT_EQ(describe_error(409, recorded("status-already-exists.json")),
            "HTTP 409 AlreadyExists: pods \"tide-chat-h100-3-k7x2p\" already exists");
  EXPECT_EQ(describe_error(401, recorded("status-unauthorized.json")),
            "HTTP 401 Unauthorized: Unauthorized");
  EXPECT_THAT(describe_error(422, recorded("status-invalid.json")),
              StartsWith("HTTP 422 Invalid: Pod \"tide-chat-h100-3-k7x2p\" is invalid: "
                         "spec.containers[0].env[0].value"));
  EXPECT_THAT(describe_error(403, recorded("status-quota-exceeded.json")),
              HasSubstr("exceeded quota: gpu-quota"));
  EXPECT_EQ(describe_error(429, recorded("status-too-many-requests.json")),
            "HTTP 429 TooManyRequests: Too many requests, please try again later.");
  // Not a Status: a proxy's page, or nothing.
  EXPECT_EQ(describe_error(502, "<html>Bad Gateway</html>\n<body>"),
            "HTTP 502: <html>Bad Gateway</html>");
  EXPECT_EQ(describe_error(500, ""), "HTTP 500 with an empty body");
}

// ---- what tide creates -----------------------------------------------------------------------

TEST(BuildPod, TheTemplateWithTidesNameLabelsEnvironmentPortAndGpus) {
  config::ProvisionerSpec spec;
  spec.kind = "kubernetes";
  spec.kube_namespace = "ml";
  spec.port = 8000;
  spec.container = "model";
  spec.gpus_per_replica = 2;
  spec.pod_template = json::parse(R"({
    "metadata": {"labels": {"app": "chat"}},
    "spec": {"containers": [
      {"name": "proxy", "image": "envoy"},
      {"name": "model", "image": "vllm", "env": [{"name": "TIDE_PORT", "value": "9"}],
       "resources": {"requests": {"nvidia.com/gpu": 1, "cpu": "4"}}}]}})")
                          .dump();
  PodRequest r;
  r.name = "tide-chat-h100-7-bcdfg";
  r.replica_id = 7;
  r.replica = "chat/h100_x/7";
  r.spec = &spec;
  const json pod = json::parse(build_pod(r));
  EXPECT_EQ(pod["apiVersion"], "v1");
  EXPECT_EQ(pod["kind"], "Pod");
  EXPECT_EQ(pod["metadata"]["name"], "tide-chat-h100-7-bcdfg");
  EXPECT_EQ(pod["metadata"]["namespace"], "ml");
  EXPECT_EQ(pod["metadata"]["labels"],
            json::parse(R"({"app": "chat", "app.kubernetes.io/managed-by": "tide",
                            "tide.dev/endpoint": "chat", "tide.dev/group": "h100_x",
                            "tide.dev/replica": "7"})"));
  EXPECT_EQ(pod["metadata"]["annotations"]["tide.dev/replica-name"], "chat/h100_x/7");
  const json& proxy = pod["spec"]["containers"][0];
  EXPECT_FALSE(proxy.contains("env"));  // only the chosen container is touched
  const json& model = pod["spec"]["containers"][1];
  EXPECT_EQ(model["env"], json::parse(R"([{"name": "TIDE_PORT", "value": "9"},
                                          {"name": "TIDE_REPLICA_ID", "value": "7"},
                                          {"name": "TIDE_REPLICA_NAME", "value": "chat/h100_x/7"}])"));
  EXPECT_EQ(model["ports"], json::parse(R"([{"containerPort": 8000, "protocol": "TCP"}])"));
  EXPECT_EQ(model["resources"]["limits"]["nvidia.com/gpu"], 2);
  EXPECT_EQ(model["resources"]["requests"]["nvidia.com/gpu"], 2);  // must equal the limit
  EXPECT_EQ(model["resources"]["requests"]["cpu"], "4");

  // Without `container`, the first; without GPUs, no GPU resource.
  spec.container = "";
  spec.gpus_per_replica = 0;
  const json plain = json::parse(build_pod(r));
  EXPECT_TRUE(plain["spec"]["containers"][0].contains("env"));
  EXPECT_FALSE(plain["spec"]["containers"][0].contains("resources"));
}

TEST(BuildPod, NamesAreDnsLabelsThatKeepTheReplicaId) {
  EXPECT_EQ(pod_name("chat/h100/3", 3, "k7x2p"), "tide-chat-h100-3-k7x2p");
  EXPECT_EQ(pod_name("my_chat/h100_fast/12", 12, "bcdfg"), "tide-my-chat-h100-fast-12-bcdfg");
  EXPECT_EQ(pod_name("replica-5", 5, "bcdfg"), "tide-5-bcdfg");
  const std::string long_name =
      pod_name(std::string(60, 'e') + "/" + std::string(60, 'g') + "/123456", 123456, "bcdfg");
  EXPECT_LE(long_name.size(), 63u);
  EXPECT_THAT(long_name, StartsWith("tide-eeee"));
  EXPECT_THAT(long_name, ::testing::EndsWith("-123456-bcdfg"));
  EXPECT_THAT(long_name, HasSubstr("-gggg"));
}

TEST(Handle, RoundTripsAndRefusesOthers) {
  const std::string h = format_handle("ml", "tide-chat-h100-3-k7x2p", "5b8c");
  EXPECT_EQ(h, "kubernetes pod=ml/tide-chat-h100-3-k7x2p uid=5b8c");
  const auto parsed = parse_handle(h);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->ns, "ml");
  EXPECT_EQ(parsed->name, "tide-chat-h100-3-k7x2p");
  EXPECT_EQ(parsed->uid, "5b8c");
  EXPECT_FALSE(parse_handle("local pid=1 start=2 port=3"));
  EXPECT_FALSE(parse_handle("kubernetes uid=1"));
  EXPECT_FALSE(parse_handle("kubernetes pod=noslash"));
}

TEST(Base64, DecodesWithOrWithoutPaddingAndRefusesGarbage) {
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode("aGVsbG8"), "hello");
  EXPECT_EQ(base64_decode("aGVs\nbG8h"), "hello!");
  EXPECT_FALSE(base64_decode("aGV*"));
  EXPECT_FALSE(base64_decode("aG=Vs"));
}

}  // namespace
}  // namespace tide::provision::kube
