#include "tide/config/pod_template.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <regex>

namespace tide::config::detail {
namespace {

using json = nlohmann::json;

constexpr std::string_view kTemplateKeys[] = {"metadata", "spec"};
constexpr std::string_view kMetadataKeys[] = {"labels", "annotations"};
// Labels tide puts on its pods: a template may not set them.
constexpr std::string_view kTideLabelPrefix = "tide.dev/";
constexpr std::string_view kManagedBy = "app.kubernetes.io/managed-by";

// A plain (unquoted) scalar as YAML 1.2's core schema reads it: bool, integer, float or string.
json plain_scalar(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex kInt(R"([-+]?[0-9]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, kInt)) {
    if (auto v = parse_int(s)) return *v;
  }
  if (std::regex_match(s, kFloat)) {
    if (auto v = parse_double(s)) return *v;
  }
  return s;
}

// Converts any YAML node to JSON; keys that are not scalars are reported.
json to_json(Reader& r, const Node& node, const std::string& path, bool& ok) {
  if (node.IsNull() || !node.IsDefined()) return nullptr;
  if (node.IsScalar()) {
    // Quoted scalars carry the tag "!", plain ones "?": only plain ones can be numbers or bools.
    if (node.Tag() == "?") return plain_scalar(node.Scalar());
    return node.Scalar();
  }
  if (node.IsSequence()) {
    json out = json::array();
    for (size_t i = 0; i < node.size(); ++i)
      out.push_back(to_json(r, node[i], index_path(path, i), ok));
    return out;
  }
  json out = json::object();
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      r.fail(path, fmt::format("keys must be names, got {}", show(it->first)));
      ok = false;
      continue;
    }
    const std::string key = it->first.Scalar();
    out[key] = to_json(r, it->second, key_path(path, key), ok);
  }
  return out;
}

// labels / annotations: a map of strings, without the keys tide sets.
void check_string_map(Reader& r, const json& map, const std::string& path, bool labels, bool& ok) {
  if (!map.is_object()) {
    r.fail(path, "expected a map of strings");
    ok = false;
    return;
  }
  for (const auto& [key, value] : map.items()) {
    if (!value.is_string()) {
      r.fail(key_path(path, key),
             fmt::format("expected a string (quote it), got {}", value.dump()));
      ok = false;
    }
    if (labels && (key.starts_with(kTideLabelPrefix) || key == kManagedBy)) {
      r.fail(key_path(path, key), "set by tide on each pod; remove it from the template");
      ok = false;
    }
  }
}

}  // namespace

bool is_dns_label(std::string_view s) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return s.size() <= 63 && std::regex_match(s.begin(), s.end(), kLabel);
}

std::optional<std::string> read_pod_template(Reader& r, const Node& node, const std::string& path,
                                             std::vector<std::string>& container_names) {
  if (!r.expect_map(node, path, " like {spec: {containers: [{name: model, image: ...}]}}"))
    return std::nullopt;
  Map m(r, node, path);
  m.allow(kTemplateKeys);
  bool ok = true;
  json pod = to_json(r, node, path, ok);

  if (const Node* meta = m.get("metadata")) {
    if (r.expect_map(*meta, m.at("metadata"), " like {labels: {app: chat}}")) {
      Map mm(r, *meta, m.at("metadata"));
      for (const auto& entry : mm.entries()) {
        const std::string& key = entry.first;
        if (key == "name" || key == "generateName" || key == "namespace") {
          r.fail(mm.at(key),
                 "set by tide (pods are named after their replica, in "
                 "provisioner.namespace); remove it from the template");
          ok = false;
        } else if (std::find(std::begin(kMetadataKeys), std::end(kMetadataKeys), key) ==
                   std::end(kMetadataKeys)) {
          mm.unknown(key, kMetadataKeys);
          ok = false;
        }
      }
      if (mm.get("labels"))
        check_string_map(r, pod["metadata"]["labels"], mm.at("labels"), true, ok);
      if (mm.get("annotations"))
        check_string_map(r, pod["metadata"]["annotations"], mm.at("annotations"), false, ok);
    } else {
      ok = false;
    }
  }

  const Node* spec = m.get("spec");
  if (spec == nullptr) {
    r.fail(m.at("spec"), "required (the pod spec, with at least one container)");
    return std::nullopt;
  }
  if (!r.expect_map(*spec, m.at("spec"), " like {containers: [{name: model, image: ...}]}"))
    return std::nullopt;
  Map sm(r, *spec, m.at("spec"));
  const Node* containers = sm.get("containers");
  if (containers == nullptr) {
    r.fail(sm.at("containers"), "required (at least one container with a name and an image)");
    return std::nullopt;
  }
  if (!r.expect_list(*containers, sm.at("containers"))) return std::nullopt;
  if (containers->size() == 0) {
    r.fail(sm.at("containers"), "must have at least one container");
    return std::nullopt;
  }
  container_names.clear();
  for (size_t i = 0; i < containers->size(); ++i) {
    const std::string at = index_path(sm.at("containers"), i);
    const Node c = (*containers)[i];
    if (!r.expect_map(c, at, " like {name: model, image: ...}")) {
      ok = false;
      continue;
    }
    Map cm(r, c, at);
    std::string name;
    std::string image;
    if (!cm.required("name") || !cm.read("name", name)) {
      ok = false;
    } else if (!is_dns_label(name)) {
      r.fail(cm.at("name"), fmt::format("must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at "
                                        "most 63 characters), got {}",
                                        quote(name)));
      ok = false;
    } else if (std::find(container_names.begin(), container_names.end(), name) !=
               container_names.end()) {
      r.fail(cm.at("name"), fmt::format("duplicate container name {}", quote(name)));
      ok = false;
    } else {
      container_names.push_back(name);
    }
    if (!cm.required("image", "the container image") || !cm.read("image", image)) {
      ok = false;
    } else if (image.empty()) {
      r.fail(cm.at("image"), "must not be empty");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return pod.dump();
}

}  // namespace tide::config::detail
