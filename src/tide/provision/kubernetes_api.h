// The plain parts of the kubernetes provisioner, without I/O: where the API server is and how to
// authenticate (kubeconfig or in-cluster service account), the pods tide creates, what a pod's
// status means for its replica, and the API's error answers. Internal to src/tide/provision;
// any thread.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tide/config/config.h"

namespace tide::provision::kube {

// A problem with the cluster's access or an API answer, in words a user can act on.
class KubeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Labels tide puts on every pod it creates; the informer lists and watches pods by the first.
inline constexpr std::string_view kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedBySelector = "app.kubernetes.io/managed-by=tide";
inline constexpr std::string_view kEndpointLabel = "tide.dev/endpoint";
inline constexpr std::string_view kGroupLabel = "tide.dev/group";
inline constexpr std::string_view kReplicaLabel = "tide.dev/replica";
inline constexpr std::string_view kReplicaAnnotation = "tide.dev/replica-name";

// Where the API server is and how to prove who tide is.
struct ClusterAccess {
  std::string key;          // one per cluster and identity: informers and clients are shared by it
  std::string description;  // for messages: "kubeconfig /x (context prod)"
  bool tls = true;          // https (http only for a local proxy or a test)
  std::string host;         // without brackets
  uint16_t port = 443;
  std::string base_path;  // a path prefix of the server URL, "" for none
  std::string ca_pem;     // "" = the system's trusted roots
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;  // "" = host
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // a bearer token, or
  std::string token_file;  // a file holding one, read again for each request (rotated tokens)
};

// Where access may come from; replaced in tests.
struct AccessSources {
  std::function<std::optional<std::string>(const char*)> getenv;  // empty: ::getenv
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

// The access a provisioner spec names: provisioner.kubeconfig (with its context), else the
// in-cluster service account when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG, else
// ~/.kube/config. Reads the files it names. Throws KubeError naming the file and field at fault.
ClusterAccess resolve_access(const config::ProvisionerSpec& spec,
                             const AccessSources& sources = {});

// A kubeconfig's text: `path` for messages and relative file names; `context` "" = current.
ClusterAccess parse_kubeconfig(const std::string& text, const std::string& path,
                               const std::string& context);

// The bearer token to send now ("" for none); throws KubeError when its file cannot be read.
std::string bearer_token(const ClusterAccess& access);

// What tide creates for one replica.
struct PodRequest {
  std::string name;  // from pod_name()
  uint64_t replica_id = 0;
  std::string replica;  // "endpoint/group/id"
  const config::ProvisionerSpec* spec = nullptr;
};

// "tide-<endpoint>-<group>-<id>-<suffix>" as a DNS label (at most 63 characters): endpoint and
// group shortened if need be, "_" written "-". `suffix` keeps names apart across runs of tide.
std::string pod_name(std::string_view replica, uint64_t replica_id, std::string_view suffix);

// The pod as JSON: spec.pod_template with tide's name, namespace, labels and annotation, the
// TIDE_REPLICA_ID / TIDE_REPLICA_NAME / TIDE_PORT environment, the port and the GPU limit on
// the chosen container.
std::string build_pod(const PodRequest& request);

// What tide needs of a pod from the API.
struct PodInfo {
  std::string name;
  std::string uid;
  std::string resource_version;
  std::string phase;  // Pending, Running, Succeeded, Failed, Unknown
  std::string pod_ip;
  bool deleting = false;  // metadata.deletionTimestamp is set
  bool scheduled = false;
  std::string unschedulable;  // the scheduler's message while it cannot place the pod
  std::string reason;         // status.reason and status.message (Evicted: ...)
  std::string message;
  std::string stuck;       // a container that will not start: "model: ImagePullBackOff: ..."
  std::string terminated;  // how containers ended: "model: exit code 1 (Error)"
};

// Reads a Pod object; throws KubeError when it lacks metadata.name.
PodInfo pod_info(const nlohmann::json& pod);

// What a pod's state means for its replica.
struct PodVerdict {
  enum class Kind { kWaiting, kRunning, kFailed };
  Kind kind = Kind::kWaiting;
  std::string text;  // kRunning: the pod IP; kFailed: why
};
PodVerdict judge(const PodInfo& pod, std::string_view ns);

// The handle reported for adoption: "kubernetes pod=NAMESPACE/NAME uid=UID".
std::string format_handle(std::string_view ns, std::string_view name, std::string_view uid);
struct PodHandle {
  std::string ns;
  std::string name;
  std::string uid;
};
std::optional<PodHandle> parse_handle(std::string_view handle);

// An error answer in words: the Status object's message when the body is one ("HTTP 403
// Forbidden: pods is forbidden: ..."), else the start of the body.
std::string describe_error(unsigned status, std::string_view body);

// base64 (standard alphabet, padding optional, whitespace ignored); nullopt if malformed.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace tide::provision::kube
