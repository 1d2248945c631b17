#include "operator_commands.h"

#include <fmt/format.h>

#include <cstdlib>
#include <iostream>

#include "tide/serve/api_token.h"
#include "tide/serve/check.h"

namespace tide::app {

void add_validate_command(CLI::App& app, ValidateArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "validate",
      "Check a configuration without running it and print it with every default filled in.");
  cmd->footer(R"(
Parses and validates CONFIG as `tide serve` would (the same as `tide serve --dry-run`), and checks
each local or Slurm group's launch command: only the placeholders {port}, {replica_id} and {tide}
(a typo such as {prot} is an error), {port} or $TIDE_PORT somewhere (or the replica cannot know
where to listen), and for kind local that the program exists and is executable (searched in
PATH). Slurm commands run on a node Slurm picks: only their template is checked. Ready probe
paths must start with /. Every problem is printed as FILE: FIELD: REASON; exit status 2 when there
is one, else 0 with the effective configuration on stdout. --sim checks only what `tide sim`
needs (simulated groups are allowed).)");
  cmd->add_option("config", a.config_path, "endpoint configuration (YAML)")
      ->type_name("CONFIG")
      ->required();
  cmd->add_flag("--sim", a.sim, "check for `tide sim` only (provisioners are not checked)");
}

void add_token_command(CLI::App& app, TokenArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "token", "Print (show) or replace (rotate) the admin API's token kept in the state file.");
  cmd->footer(R"(
`tide serve` takes its API token from server.api_token, else TIDE_API_TOKEN, else the state file,
where it generates one at its first start. `tide token show` prints the state file's token on
stdout, so that
  export TIDE_API_TOKEN=$(tide token show --state tide-state.db)
lets `tide status`, `tide history` and curl -H "Authorization: Bearer $TIDE_API_TOKEN" in.
`show` works beside a running `tide serve`. `tide token rotate` writes a new one and prints it;
`tide serve` reads the token when it starts and holds the state file while it runs, so rotate
refuses then: stop it, rotate, start it again (the old token stops working). With --config,
the state file is that config's state.path, and a server.api_token set there is shown instead.)");
  cmd->add_option("action", a.action, "show (default) or rotate")
      ->type_name("show|rotate")
      ->check(CLI::IsMember({"show", "rotate"}));
  cmd->add_option("--state", a.state, "the state file (tide serve's state.path)")
      ->type_name("FILE")
      ->capture_default_str();
  cmd->add_option("--config", a.config_path, "take the state file from this config's state.path")
      ->type_name("CONFIG");
}

int check_and_print(const config::Config& c, const std::string& path, bool for_serving) {
  if (for_serving) {
    if (auto problems = serve::check_for_serving(c); !problems.empty())
      throw config::ConfigError(std::move(problems), path);
  }
  size_t groups = 0;
  for (const auto& e : c.endpoints) groups += e.groups.size();
  std::cout << config::effective_yaml(c);
  std::cerr << fmt::format("{}: valid{}: {} endpoint(s), {} group(s)\n", path,
                           for_serving ? " for tide serve" : " for tide sim", c.endpoints.size(),
                           groups);
  return 0;
}

int run_validate(const ValidateArgs& a) {
  return check_and_print(config::load_config(a.config_path), a.config_path, !a.sim);
}

int run_token(const TokenArgs& a) {
  const bool rotate = a.action == "rotate";
  std::string state = a.state;
  if (!a.config_path.empty()) {
    const config::Config c = config::load_config(a.config_path);
    if (!c.server.api_token.empty()) {
      if (rotate)
        throw std::runtime_error(
            fmt::format("{}: server.api_token is set there: change it in the file", a.config_path));
      std::cerr << fmt::format("the token of {} (server.api_token)\n", a.config_path);
      std::cout << c.server.api_token << "\n";
      return 0;
    }
    state = c.state.path;
  }
  if (rotate) {
    std::cout << serve::rotate_api_token(state) << "\n";
    std::cerr << fmt::format("a new API token is in {}; tide serve uses it from its next start\n",
                             state);
    return 0;
  }
  const auto token = serve::stored_api_token(state);
  if (!token)
    throw std::runtime_error(
        fmt::format("{}: holds no API token (tide serve generates one at its first start unless "
                    "server.api_token or TIDE_API_TOKEN gives it)",
                    state));
  if (const char* env = std::getenv("TIDE_API_TOKEN"); env != nullptr && *env != '\0')
    std::cerr << "note: TIDE_API_TOKEN is set here; a tide serve started with it uses it instead\n";
  std::cout << *token << "\n";
  return 0;
}

}  // namespace tide::app
