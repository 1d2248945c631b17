#include "tide/auth/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tide::auth {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const Time kNow = Time{std::chrono::seconds(1'717'000'000)};

class KeyFile : public ::testing::Test {
 protected:
  KeyFile() {
    dir_ = fs::temp_directory_path() /
           ("tide_keys_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "route.key").string();
  }
  ~KeyFile() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string path_;
};

TEST_F(KeyFile, IsCreatedOwnerOnlyAndKeepsItsKeysAcrossOpens) {
  const KeyRing first = KeyRing::open(path_, kNow);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const KeyRing second = KeyRing::open(path_, kNow + 1h);
  EXPECT_EQ(second.current_key_id(), first.current_key_id());
  EXPECT_EQ(second.replica_secret("chat/gpu/1"), first.replica_secret("chat/gpu/1"));
  // A token of the first opening verifies with the keys of the second.
  Claims c;
  c.endpoint = "chat";
  c.replica_id = 1;
  c.expires_at = kNow + 30s;
  c.request = 42;
  TokenVerifier v("chat", 1);
  v.set_keys(second.public_keys(kNow));
  EXPECT_TRUE(v.verify(first.issue(c), kNow).ok);
}

TEST_F(KeyFile, ReadableByOthersIsRefused) {
  KeyRing::open(path_, kNow);
  ::chmod(path_.c_str(), 0644);
  try {
    KeyRing::open(path_, kNow);
    FAIL() << "opened a key file others can read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mode 0644"), std::string::npos) << e.what();
  }
}

TEST_F(KeyFile, AMalformedFileIsRefusedNamingTheField) {
  { std::ofstream(path_) << R"({"agent_master": "short", "keys": []})"; }
  ::chmod(path_.c_str(), 0600);
  try {
    KeyRing::open(path_, kNow);
    FAIL() << "opened a malformed key file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("agent_master"), std::string::npos) << e.what();
  }
  { std::ofstream(path_) << "not json"; }
  EXPECT_THROW(KeyRing::open(path_, kNow), std::runtime_error);
}

TEST_F(KeyFile, RotationIsSavedAndThePreviousKeyListedUntilItsTokensExpire) {
  KeyRing ring = KeyRing::open(path_, kNow);
  const std::string old_id = ring.current_key_id();
  ring.rotate(kNow + 10s, 30s);
  const KeyRing reopened = KeyRing::open(path_, kNow + 20s);
  EXPECT_EQ(reopened.current_key_id(), ring.current_key_id());
  const auto keys = reopened.public_keys(kNow + 20s);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[1].id, old_id);
  EXPECT_EQ(keys[1].valid_until, kNow + 40s);
  EXPECT_FALSE(keys[0].valid_until.has_value());
  EXPECT_EQ(KeyRing::open(path_, kNow + 41s).public_keys(kNow + 41s).size(), 1u);
}

TEST(ReplicaSecret, IsStablePerReplicaAndDiffersBetweenReplicasAndRings) {
  const KeyRing a = KeyRing::ephemeral(kNow);
  const KeyRing b = KeyRing::ephemeral(kNow);
  EXPECT_EQ(a.replica_secret("chat/gpu/1"), a.replica_secret("chat/gpu/1"));
  EXPECT_NE(a.replica_secret("chat/gpu/1"), a.replica_secret("chat/gpu/2"));
  EXPECT_NE(a.replica_secret("chat/gpu/1"), b.replica_secret("chat/gpu/1"));
  EXPECT_EQ(a.replica_secret("chat/gpu/1").size(), 43u);
  EXPECT_TRUE(secrets_equal(a.replica_secret("x"), a.replica_secret("x")));
  EXPECT_FALSE(secrets_equal(a.replica_secret("x"), a.replica_secret("y")));
  EXPECT_FALSE(secrets_equal("abc", "abcd"));
}

}  // namespace
}  // namespace tide::auth
