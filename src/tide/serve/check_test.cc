#include "tide/serve/check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tide::serve {
namespace {

namespace fs = std::filesystem;

const std::string kPath = "/usr/bin:/bin";

TEST(CheckCommand, AcceptsTheQuickstartsTemplate) {
  EXPECT_TRUE(check_command({"{tide}", "demo-model", "--port", "{port}", "--seed", "{replica_id}"},
                            true, "/bin/sh", kPath)
                  .empty());
  // The port from the environment, in a shell command; ${HOME} is the shell's, not ours.
  EXPECT_TRUE(
      check_command({"sh", "-c", "exec server --port $TIDE_PORT --dir ${HOME}"}, true, "", kPath)
          .empty());
}

TEST(CheckCommand, NamesAnUnknownPlaceholderAndTheMissingPort) {
  EXPECT_EQ(check_command({"{tide}", "demo-model", "--port", "{prot}"}, true, "/bin/sh", kPath),
            (std::vector<std::string>{
                "[3]: unknown placeholder {prot} (known: {port}, {replica_id}, {tide})",
                "no {port} in any argument (nor $TIDE_PORT): the replica would not know where to "
                "listen, and its probe would never answer"}));
}

TEST(CheckCommand, NamesAProgramThatCannotRun) {
  const fs::path dir = fs::temp_directory_path() / ("tide_check_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path plain = dir / "server.py";
  std::ofstream(plain) << "print('hi')\n";
  chmod(plain.c_str(), 0644);
  EXPECT_EQ(check_command({plain.string(), "{port}"}, true, "", kPath),
            std::vector<std::string>{"[0]: cannot run " + plain.string() + ": not executable"});
  EXPECT_EQ(
      check_command({(dir / "none").string(), "{port}"}, true, "", kPath),
      std::vector<std::string>{"[0]: cannot run " + (dir / "none").string() + ": no such file"});
  EXPECT_EQ(check_command({"tide-no-such-server", "{port}"}, true, "", kPath),
            std::vector<std::string>{"[0]: cannot run tide-no-such-server: not found in PATH"});
  // Slurm runs it on another node: the program is not looked for here.
  EXPECT_TRUE(check_command({"tide-no-such-server", "{port}"}, false, "", kPath).empty());
  EXPECT_TRUE(check_command({"sh", "{port}"}, true, "", kPath).empty());
  fs::remove_all(dir);
}

TEST(CheckForServing, NamesTheFieldOfEveryProblem) {
  config::EndpointSpec ep;
  ep.name = "chat";
  config::GroupSpec g;
  g.name = "a";
  g.provisioner.kind = "local";
  g.provisioner.command = {"sh", "-c", "serve {prot}"};
  ep.groups.push_back(g);
  const auto problems = check_for_serving(ep, "endpoints[0]");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0],
            "endpoints[0].groups[0].provisioner.command[2]: unknown placeholder {prot} (known: "
            "{port}, {replica_id}, {tide})");
  EXPECT_TRUE(problems[1].starts_with("endpoints[0].groups[0].provisioner.command: no {port}"))
      << problems[1];
}

}  // namespace
}  // namespace tide::serve
