// `tide validate` and `tide token`: checking a configuration before `tide serve` runs it, and the
// admin API's token kept in its state file.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "tide/config/config.h"

namespace tide::app {

struct ValidateArgs {
  std::string config_path;
  bool sim = false;
};

struct TokenArgs {
  std::string state = "tide-state.db";
  std::string config_path;
  std::string action = "show";  // show | rotate
};

void add_validate_command(CLI::App& app, ValidateArgs& a);
void add_token_command(CLI::App& app, TokenArgs& a);

// Checks `c` (read from `path`) as `tide serve` would, without starting anything; prints the
// effective configuration. Throws config::ConfigError (with `path` as its source) listing every
// problem. Also `tide serve --dry-run`.
int check_and_print(const config::Config& c, const std::string& path, bool for_serving);
int run_validate(const ValidateArgs& a);
int run_token(const TokenArgs& a);

}  // namespace tide::app
