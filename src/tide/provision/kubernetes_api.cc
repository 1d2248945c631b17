#include "tide/provision/kubernetes_api.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tide/net/address.h"

namespace tide::provision::kube {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_required(const std::string& path, std::string_view what) {
  auto text = read_text(path);
  if (!text) throw KubeError(fmt::format("cannot read {} {}", what, path));
  return *text;
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// "https://host[:port][/prefix]" into `a`; throws with `what` naming the field.
void parse_server(const std::string& url, const std::string& what, ClusterAccess& a) {
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    a.tls = true;
    a.port = 443;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    a.tls = false;
    a.port = 80;
    rest.remove_prefix(7);
  } else {
    throw KubeError(fmt::format("{}: expected https://host[:port], got \"{}\"", what, url));
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (path.ends_with('/')) path.remove_suffix(1);
    a.base_path = std::string(path);
  }
  net::AuthorityError why{};
  auto parsed = net::parse_authority(authority, why);
  if (!parsed) {
    constexpr std::string_view kWhy[] = {"unterminated [", "expected :port after ]", "no host",
                                         "bad port"};
    throw KubeError(fmt::format("{}: {} in \"{}\"", what, kWhy[static_cast<int>(why)], url));
  }
  a.host = std::move(parsed->host);
  if (parsed->port) a.port = *parsed->port;
}

// `map[key]`, or an undefined node when `map` is not a map or lacks the key (yaml-cpp throws
// when a missing key's node is used).
YAML::Node child(const YAML::Node& map, const char* key) {
  if (!map.IsDefined() || !map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node n = map[key];
  return n ? n : YAML::Node(YAML::NodeType::Undefined);
}

// The item named `name` of a kubeconfig list (clusters, contexts, users), or an undefined node.
YAML::Node find_named(const YAML::Node& list, const std::string& name) {
  if (!list.IsDefined() || !list.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& item : list) {
    const YAML::Node n = child(item, "name");
    if (n.IsDefined() && n.IsScalar() && n.Scalar() == name) return item;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::optional<std::string> scalar(const YAML::Node& map, const char* key, const std::string& at) {
  const YAML::Node n = child(map, key);
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (!n.IsScalar()) throw KubeError(fmt::format("{}.{}: expected a string", at, key));
  return n.Scalar();
}

// PEM from `<key>-data` (base64) or `<key>` (a file, relative to the kubeconfig).
std::string pem_field(const YAML::Node& map, const std::string& key, const std::string& at,
                      const fs::path& dir) {
  if (auto data = scalar(map, (key + "-data").c_str(), at)) {
    auto pem = base64_decode(*data);
    if (!pem) throw KubeError(fmt::format("{}.{}-data: not valid base64", at, key));
    return *pem;
  }
  if (auto file = scalar(map, key.c_str(), at)) {
    const fs::path p = fs::path(*file).is_absolute() ? fs::path(*file) : dir / *file;
    auto text = read_text(p.string());
    if (!text) throw KubeError(fmt::format("{}.{}: cannot read {}", at, key, p.string()));
    return *text;
  }
  return "";
}

std::string sanitize_label_value(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 63)) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    out += ok ? c : '-';
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.back()))) out.pop_back();
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
  return out;
}

// DNS-label characters only: lowercase, digits and '-'.
std::string dns_part(std::string_view s) {
  std::string out;
  for (char c : s) {
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += std::isalnum(static_cast<unsigned char>(l)) ? l : '-';
  }
  return out;
}

std::string field_string(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& field(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  const auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++padding;
      continue;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      continue;
    } else {
      return std::nullopt;
    }
    if (padding > 0) return std::nullopt;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6 || padding > 2) return std::nullopt;
  return out;
}

ClusterAccess parse_kubeconfig(const std::string& text, const std::string& path,
                               const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw KubeError(
        fmt::format("kubeconfig {}: line {}: invalid YAML: {}", path, e.mark.line + 1, e.msg));
  }
  if (!root.IsMap()) throw KubeError(fmt::format("kubeconfig {}: expected a map", path));
  const std::string in = fmt::format("kubeconfig {}: ", path);
  std::string context_name = context;
  if (context_name.empty()) {
    auto current = scalar(root, "current-context", "kubeconfig");
    if (!current || current->empty())
      throw KubeError(in + "no current-context (set provisioner.context)");
    context_name = *current;
  }
  const YAML::Node ctx_item = find_named(child(root, "contexts"), context_name);
  if (!ctx_item.IsDefined())
    throw KubeError(fmt::format("{}no context named \"{}\"", in, context_name));
  const YAML::Node ctx = child(ctx_item, "context");
  const std::string ctx_at = fmt::format("{}contexts[{}].context", in, context_name);
  const auto cluster_name = scalar(ctx, "cluster", ctx_at);
  if (!cluster_name) throw KubeError(ctx_at + ".cluster: required");
  const YAML::Node cluster_item = find_named(child(root, "clusters"), *cluster_name);
  if (!cluster_item.IsDefined())
    throw KubeError(fmt::format("{}no cluster named \"{}\"", in, *cluster_name));
  const YAML::Node cluster = child(cluster_item, "cluster");
  const std::string cluster_at = fmt::format("{}clusters[{}].cluster", in, *cluster_name);

  ClusterAccess a;
  a.key = fmt::format("kubeconfig {} context {}", path, context_name);
  a.description = fmt::format("kubeconfig {} (context {})", path, context_name);
  const fs::path dir = fs::path(path).parent_path();
  const auto server = scalar(cluster, "server", cluster_at);
  if (!server) throw KubeError(cluster_at + ".server: required");
  parse_server(*server, cluster_at + ".server", a);
  if (child(cluster, "proxy-url").IsDefined())
    throw KubeError(cluster_at +
                    ".proxy-url: not supported (tide connects to the server directly)");
  a.ca_pem = pem_field(cluster, "certificate-authority", cluster_at, dir);
  if (auto skip = scalar(cluster, "insecure-skip-tls-verify", cluster_at)) {
    if (*skip != "true" && *skip != "false")
      throw KubeError(cluster_at + ".insecure-skip-tls-verify: expected true or false");
    a.insecure_skip_tls_verify = *skip == "true";
  }
  if (auto name = scalar(cluster, "tls-server-name", cluster_at)) a.tls_server_name = *name;

  if (auto user_name = scalar(ctx, "user", ctx_at); user_name && !user_name->empty()) {
    const YAML::Node user_item = find_named(child(root, "users"), *user_name);
    if (!user_item.IsDefined())
      throw KubeError(fmt::format("{}no user named \"{}\"", in, *user_name));
    const YAML::Node user = child(user_item, "user");
    const std::string user_at = fmt::format("{}users[{}].user", in, *user_name);
    {
      for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
        if (child(user, unsupported).IsDefined())
          throw KubeError(fmt::format(
              "{}.{}: not supported (use a bearer token, a tokenFile or a client certificate, "
              "e.g. of a service account)",
              user_at, unsupported));
      }
    }
    if (auto token = scalar(user, "token", user_at)) a.token = *token;
    if (auto file = scalar(user, "tokenFile", user_at)) {
      a.token_file = fs::path(*file).is_absolute() ? *file : (dir / *file).string();
    }
    a.client_cert_pem = pem_field(user, "client-certificate", user_at, dir);
    a.client_key_pem = pem_field(user, "client-key", user_at, dir);
    if (a.client_cert_pem.empty() != a.client_key_pem.empty())
      throw KubeError(user_at +
                      ": a client certificate needs both client-certificate and "
                      "client-key");
  }
  if (!a.tls && (!a.client_cert_pem.empty() || !a.ca_pem.empty()))
    throw KubeError(cluster_at + ".server: certificates need an https:// server");
  return a;
}

ClusterAccess resolve_access(const config::ProvisionerSpec& spec, const AccessSources& sources) {
  auto env = [&](const char* name) -> std::optional<std::string> {
    if (sources.getenv) return sources.getenv(name);
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  auto from_file = [&](const std::string& path) {
    return parse_kubeconfig(read_required(path, "kubeconfig"), path, spec.kube_context);
  };
  if (!spec.kubeconfig.empty()) return from_file(spec.kubeconfig);
  const auto host = env("KUBERNETES_SERVICE_HOST");
  if (host && !host->empty()) {
    if (!spec.kube_context.empty())
      throw KubeError(
          "provisioner.context: needs provisioner.kubeconfig (tide runs in a pod and "
          "would use its service account)");
    ClusterAccess a;
    a.key = "in-cluster";
    a.description = "in-cluster service account";
    const auto port = env("KUBERNETES_SERVICE_PORT");
    const std::string bracketed = host->find(':') == std::string::npos ? *host : "[" + *host + "]";
    const std::string url =
        fmt::format("https://{}:{}", bracketed, port && !port->empty() ? *port : "443");
    parse_server(url, "KUBERNETES_SERVICE_HOST/PORT", a);
    a.ca_pem = read_required(sources.service_account_dir + "/ca.crt", "service account CA");
    a.token_file = sources.service_account_dir + "/token";
    bearer_token(a);  // readable now, or say so at once
    return a;
  }
  if (const auto kubeconfig = env("KUBECONFIG"); kubeconfig && !kubeconfig->empty()) {
    // Only the first file of a list: tide does not merge kubeconfigs.
    return from_file(kubeconfig->substr(0, kubeconfig->find(':')));
  }
  if (const auto home = env("HOME"); home && fs::exists(*home + "/.kube/config"))
    return from_file(*home + "/.kube/config");
  throw KubeError(
      "no Kubernetes cluster to talk to: set provisioner.kubeconfig, or run tide in "
      "a pod (KUBERNETES_SERVICE_HOST is not set, nor KUBECONFIG, and there is no "
      "~/.kube/config)");
}

std::string bearer_token(const ClusterAccess& access) {
  if (access.token_file.empty()) return access.token;
  return trim(read_required(access.token_file, "token file"));
}

std::string pod_name(std::string_view replica, uint64_t replica_id, std::string_view suffix) {
  // replica is "endpoint/group/id"; anything else is used whole.
  std::string endpoint;
  std::string group;
  if (const size_t a = replica.find('/'); a != std::string_view::npos) {
    const size_t b = replica.find('/', a + 1);
    endpoint = dns_part(replica.substr(0, a));
    group = dns_part(replica.substr(a + 1, b == std::string_view::npos ? b : b - a - 1));
  }
  const std::string tail = fmt::format("-{}-{}", replica_id, dns_part(suffix));
  // "tide-" + endpoint + "-" + group + tail <= 63: share what is left between the two.
  const size_t room = 63 - 5 - 1 - std::min<size_t>(tail.size(), 56);
  if (endpoint.size() + group.size() > room) {
    const size_t half = room / 2;
    if (endpoint.size() > half && group.size() > room - half) {
      endpoint.resize(half);
      group.resize(room - half);
    } else if (endpoint.size() > half) {
      endpoint.resize(room - group.size());
    } else {
      group.resize(room - endpoint.size());
    }
  }
  std::string name = endpoint.empty() ? fmt::format("tide{}", tail)
                                      : fmt::format("tide-{}-{}{}", endpoint, group, tail);
  name.resize(std::min<size_t>(name.size(), 63));
  // No "--" runs from trimmed parts, nothing but alphanumerics at the end.
  std::string out;
  for (char c : name) {
    if (c == '-' && !out.empty() && out.back() == '-') continue;
    out += c;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string build_pod(const PodRequest& r) {
  const config::ProvisionerSpec& spec = *r.spec;
  json pod = json::parse(spec.pod_template);
  pod["apiVersion"] = "v1";
  pod["kind"] = "Pod";
  json& meta = pod["metadata"];
  meta["name"] = r.name;
  meta["namespace"] = spec.kube_namespace;
  json& labels = meta["labels"];
  labels[std::string(kManagedByLabel)] = "tide";
  std::string endpoint;
  std::string group;
  if (const size_t a = r.replica.find('/'); a != std::string::npos) {
    endpoint = r.replica.substr(0, a);
    const size_t b = r.replica.find('/', a + 1);
    group = r.replica.substr(a + 1, b == std::string::npos ? b : b - a - 1);
  }
  if (!endpoint.empty()) labels[std::string(kEndpointLabel)] = sanitize_label_value(endpoint);
  if (!group.empty()) labels[std::string(kGroupLabel)] = sanitize_label_value(group);
  labels[std::string(kReplicaLabel)] = std::to_string(r.replica_id);
  meta["annotations"][std::string(kReplicaAnnotation)] = r.replica;

  json& containers = pod["spec"]["containers"];
  json* target = &containers.at(0);
  for (auto& c : containers) {
    if (!spec.container.empty() && field_string(c, "name") == spec.container) target = &c;
  }
  json& c = *target;
  json& env = c["env"];
  if (!env.is_array()) env = json::array();
  auto set_env = [&](const std::string& name, const std::string& value) {
    for (const auto& e : env) {
      if (field_string(e, "name") == name) return;  // the template's own value wins
    }
    env.push_back({{"name", name}, {"value", value}});
  };
  set_env("TIDE_REPLICA_ID", std::to_string(r.replica_id));
  set_env("TIDE_REPLICA_NAME", r.replica);
  set_env("TIDE_PORT", std::to_string(spec.port));
  json& ports = c["ports"];
  if (!ports.is_array()) ports = json::array();
  const bool declared = std::any_of(ports.begin(), ports.end(), [&](const json& p) {
    return field(p, "containerPort") == spec.port;
  });
  if (!declared) ports.push_back({{"containerPort", spec.port}, {"protocol", "TCP"}});
  if (spec.gpus_per_replica > 0) {
    json& resources = c["resources"];
    resources["limits"][spec.gpu_resource] = spec.gpus_per_replica;
    // Extended resources need requests == limits when both are given.
    if (resources.contains("requests") && resources["requests"].is_object() &&
        resources["requests"].contains(spec.gpu_resource))
      resources["requests"][spec.gpu_resource] = spec.gpus_per_replica;
  }
  return pod.dump();
}

PodInfo pod_info(const json& pod) {
  PodInfo p;
  const json& meta = field(pod, "metadata");
  p.name = field_string(meta, "name");
  if (p.name.empty()) throw KubeError("a pod without metadata.name");
  p.uid = field_string(meta, "uid");
  p.resource_version = field_string(meta, "resourceVersion");
  p.deleting = field(meta, "deletionTimestamp").is_string();
  const json& status = field(pod, "status");
  p.phase = field_string(status, "phase");
  p.pod_ip = field_string(status, "podIP");
  p.reason = field_string(status, "reason");
  p.message = field_string(status, "message");
  if (field(field(pod, "spec"), "nodeName").is_string()) p.scheduled = true;
  const json& conditions = field(status, "conditions");
  if (conditions.is_array()) {
    for (const auto& c : conditions) {
      if (field_string(c, "type") != "PodScheduled") continue;
      if (field_string(c, "status") == "True") {
        p.scheduled = true;
      } else if (field_string(c, "reason") == "Unschedulable") {
        p.unschedulable = field_string(c, "message");
        if (p.unschedulable.empty()) p.unschedulable = "Unschedulable";
      }
    }
  }
  // Containers that cannot start, and how those that ended did.
  static constexpr std::string_view kStuck[] = {
      "ImagePullBackOff",           "ErrImageNeverPull",    "InvalidImageName", "CrashLoopBackOff",
      "CreateContainerConfigError", "CreateContainerError", "RunContainerError"};
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    const json& statuses = field(status, list);
    if (!statuses.is_array()) continue;
    for (const auto& cs : statuses) {
      const std::string name = field_string(cs, "name");
      const json& state = field(cs, "state");
      const json& waiting = field(state, "waiting");
      const std::string why = field_string(waiting, "reason");
      if (p.stuck.empty() &&
          std::find(std::begin(kStuck), std::end(kStuck), why) != std::end(kStuck)) {
        const std::string message = field_string(waiting, "message");
        p.stuck = message.empty() ? fmt::format("{}: {}", name, why)
                                  : fmt::format("{}: {}: {}", name, why, message);
      }
      const json* ended = &field(state, "terminated");
      if (ended->is_null()) ended = &field(field(cs, "lastState"), "terminated");
      if (p.terminated.empty() && ended->is_object()) {
        const json& code = field(*ended, "exitCode");
        const std::string reason = field_string(*ended, "reason");
        p.terminated =
            fmt::format("{}: exit code {}{}", name, code.is_number_integer() ? code.dump() : "?",
                        reason.empty() ? "" : fmt::format(" ({})", reason));
      }
    }
  }
  return p;
}

PodVerdict judge(const PodInfo& p, std::string_view ns) {
  using Kind = PodVerdict::Kind;
  const std::string pod = fmt::format("pod {}/{}", ns, p.name);
  auto because = [&]() {
    std::string why;
    if (!p.reason.empty()) why = p.reason;
    if (!p.message.empty()) why += (why.empty() ? "" : ": ") + p.message;
    if (why.empty()) why = p.terminated;
    return why.empty() ? std::string() : ": " + why;
  };
  if (p.phase == "Failed") return {Kind::kFailed, fmt::format("{} failed{}", pod, because())};
  if (p.phase == "Succeeded") return {Kind::kFailed, fmt::format("{} exited{}", pod, because())};
  if (p.deleting) return {Kind::kFailed, fmt::format("{} is being deleted (not by tide)", pod)};
  if (!p.stuck.empty()) return {Kind::kFailed, fmt::format("{} cannot start: {}", pod, p.stuck)};
  if (p.phase == "Running" && !p.pod_ip.empty()) return {Kind::kRunning, p.pod_ip};
  return {Kind::kWaiting, ""};
}

std::string format_handle(std::string_view ns, std::string_view name, std::string_view uid) {
  return fmt::format("kubernetes pod={}/{} uid={}", ns, name, uid);
}

std::optional<PodHandle> parse_handle(std::string_view handle) {
  constexpr std::string_view kPrefix = "kubernetes ";
  if (!handle.starts_with(kPrefix)) return std::nullopt;
  handle.remove_prefix(kPrefix.size());
  PodHandle h;
  while (!handle.empty()) {
    const size_t space = handle.find(' ');
    const std::string_view word = handle.substr(0, space);
    if (word.starts_with("pod=")) {
      const std::string_view v = word.substr(4);
      const size_t slash = v.find('/');
      if (slash == std::string_view::npos) return std::nullopt;
      h.ns = std::string(v.substr(0, slash));
      h.name = std::string(v.substr(slash + 1));
    } else if (word.starts_with("uid=")) {
      h.uid = std::string(word.substr(4));
    }
    handle = space == std::string_view::npos ? std::string_view() : handle.substr(space + 1);
  }
  if (h.ns.empty() || h.name.empty()) return std::nullopt;
  return h;
}

std::string describe_error(unsigned status, std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && field_string(j, "kind") == "Status") {
    const std::string reason = field_string(j, "reason");
    const std::string message = field_string(j, "message");
    return fmt::format("HTTP {}{}: {}", status, reason.empty() ? "" : " " + reason,
                       message.empty() ? "(no message)" : message);
  }
  std::string_view start = body.substr(0, std::min<size_t>(body.size(), 200));
  start = start.substr(0, start.find('\n'));
  if (start.empty()) return fmt::format("HTTP {} with an empty body", status);
  return fmt::format("HTTP {}: {}", status, start);
}

}  // namespace tide::provision::kube
