#include "tide/serve/check.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "tide/gateway/tls_certs.h"
#include "tide/provision/provision.h"

namespace tide::serve {

namespace {

constexpr std::string_view kPlaceholders[] = {"{port}", "{replica_id}", "{tide}"};

// Unknown {words} in one argument: "{prot}" in "--port={prot}".
std::vector<std::string> unknown_placeholders(std::string_view arg) {
  std::vector<std::string> out;
  for (size_t lb = arg.find('{'); lb != std::string_view::npos; lb = arg.find('{', lb + 1)) {
    const size_t rb = arg.find('}', lb);
    if (rb == std::string_view::npos) break;
    const std::string_view word = arg.substr(lb, rb - lb + 1);
    // Only identifier-like words: shell text such as ${HOME} or JSON in an argument is left alone.
    const bool identifier = word.size() > 2 && word.find_first_not_of("abcdefghijklmnopqrstuvwxyz_",
                                                                      1) == word.size() - 1;
    const bool shell = lb > 0 && arg[lb - 1] == '$';
    if (!identifier || shell) continue;
    if (std::find(std::begin(kPlaceholders), std::end(kPlaceholders), word) ==
        std::end(kPlaceholders))
      out.emplace_back(word);
  }
  return out;
}

// "" when `program` is an executable file (as execvp would find it), else why not.
std::string not_executable(const std::string& program, const std::string& path_env) {
  namespace fs = std::filesystem;
  auto check = [](const std::string& file) -> std::string {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return "no such file";
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    if (::access(file.c_str(), X_OK) != 0) return "not executable";
    return "";
  };
  if (program.find('/') != std::string::npos) {
    const std::string why = check(program);
    return why.empty() ? "" : fmt::format("{}: {}", program, why);
  }
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t colon = path_env.find(':', start);
    if (colon == std::string::npos) colon = path_env.size();
    const std::string dir = colon == start ? "." : path_env.substr(start, colon - start);
    if (check((fs::path(dir) / program).string()).empty()) return "";
    start = colon + 1;
  }
  return fmt::format("{}: not found in PATH", program);
}

}  // namespace

std::vector<std::string> check_command(const std::vector<std::string>& command, bool local,
                                       const std::string& tide, const std::string& path_env) {
  std::vector<std::string> problems;
  bool port = false;
  for (size_t i = 0; i < command.size(); ++i) {
    for (const std::string& word : unknown_placeholders(command[i]))
      problems.push_back(fmt::format(
          "[{}]: unknown placeholder {} (known: {{port}}, {{replica_id}}, {{tide}})", i, word));
    if (command[i].find("{port}") != std::string::npos ||
        command[i].find("TIDE_PORT") != std::string::npos)
      port = true;
  }
  if (!port)
    problems.push_back(
        "no {port} in any argument (nor $TIDE_PORT): the replica would not know where to "
        "listen, and its probe would never answer");
  if (local && !command.empty() && unknown_placeholders(command[0]).empty()) {
    std::string program = command[0];
    for (size_t at = program.find("{tide}"); at != std::string::npos; at = program.find("{tide}"))
      program.replace(at, 6, tide);
    if (const std::string why = not_executable(program, path_env); !why.empty())
      problems.push_back("[0]: cannot run " + why);
  }
  return problems;
}

std::vector<std::string> check_for_serving(const config::EndpointSpec& ep, const std::string& at) {
  std::error_code ec;
  const std::string tide = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  const char* path_env = std::getenv("PATH");
  std::vector<std::string> problems;
  for (size_t g = 0; g < ep.groups.size(); ++g) {
    const auto& group = ep.groups[g];
    const auto& p = group.provisioner;
    const std::string at_group = fmt::format("{}.groups[{}]", at, g);
    const std::string at_prov = at_group + ".provisioner";
    if (!provision::LiveProvisioner::supports(p.kind)) {
      problems.push_back(fmt::format(
          "{}.kind: {} cannot run live replicas (use local, static, slurm or kubernetes)", at_prov,
          p.kind));
    } else if (const std::string problem = provision::LiveProvisioner::check(p); !problem.empty()) {
      problems.push_back(fmt::format("{}: {}", at_prov, problem));
    } else if ((p.kind == "local" || p.kind == "slurm") && p.command.empty()) {
      problems.push_back(fmt::format(
          "{}.command: required for kind {} (the replica's argv, with {{port}} where it listens)",
          at_prov, p.kind));
    } else if (p.kind == "local" || p.kind == "slurm") {
      // Slurm runs the command on a node of its choosing: only the template is checked here.
      for (const std::string& why :
           check_command(p.command, p.kind == "local", tide, path_env ? path_env : ""))
        problems.push_back(
            fmt::format("{}.command{}", at_prov, why.starts_with("[") ? why : ": " + why));
    } else if (p.kind == "static" && group.max_replicas > static_cast<int>(p.urls.size())) {
      problems.push_back(fmt::format("{}.max_replicas: must be <= the number of urls ({}), got {}",
                                     at_group, p.urls.size(), group.max_replicas));
    }
  }
  return problems;
}

std::vector<std::string> check_for_serving(const config::Config& config) {
  std::vector<std::string> problems;
  // The listeners' certificates and keys: readable, PEM, the key the certificate's.
  for (auto [field, tls] : {std::pair{"server.tls", &config.server.tls},
                            std::pair{"server.api_tls", &config.server.api_tls}}) {
    if (!tls->enabled()) continue;
    try {
      gateway::TlsCerts(*tls, field);
    } catch (const config::ConfigError& e) {
      problems.insert(problems.end(), e.problems().begin(), e.problems().end());
    }
  }
  for (size_t e = 0; e < config.endpoints.size(); ++e) {
    auto more = check_for_serving(config.endpoints[e], fmt::format("endpoints[{}]", e));
    problems.insert(problems.end(), more.begin(), more.end());
  }
  return problems;
}

}  // namespace tide::serve
