// End to end over HTTPS (server.tls, server.api_tls): a real `tide serve` with demo-model replicas
// (serve_harness.h), certificates made for each test (make_test_pki), curl as the client, and an
// OpenSSL client where the test must see the certificate served.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "http_client.h"
#include "serve_harness.h"
#include "tide/testing/fake_kube_api.h"

namespace tide::test {
namespace {

using provision::testing::make_test_pki;
using provision::testing::TestPki;

// A folder for one test's certificates (the Serve's own folder is made anew when it starts).
class CertDir {
 public:
  explicit CertDir(const std::string& name)
      : dir_(fs::temp_directory_path() / ("tide_tls_" + std::to_string(getpid()) + "_" + name)) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~CertDir() { fs::remove_all(dir_); }
  // Writes ca.crt, server.crt and server.key from `pki`.
  void write(const TestPki& pki) const {
    std::ofstream(dir_ / "ca.crt") << pki.ca_pem;
    std::ofstream(dir_ / "server.crt") << pki.server_cert_pem;
    std::ofstream(dir_ / "server.key") << pki.server_key_pem;
  }
  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  // `tls: {...}` with this folder's server.crt and server.key, for `key` (tls, api_tls).
  std::string tls(const std::string& key) const {
    return ", " + key + ": {cert_file: \"" + path("server.crt") + "\", key_file: \"" +
           path("server.key") + "\"}";
  }

 private:
  fs::path dir_;
};

using Curl = CliRun;  // curl's exit status and its stdout and stderr
// `curl -sS ARGS`.
Curl curl(const std::string& args) {
  return run_command("curl -sS --max-time 20 " + args + " 2>&1");
}

// A TLS client on 127.0.0.1:port that trusts anything: the test looks at what it was served.
class TlsClient {
 public:
  explicit TlsClient(uint16_t port) : fd_(http_connect(port)) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    ssl_ = SSL_new(ctx_);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ok_ = fd_ >= 0 && SSL_set_fd(ssl_, fd_) == 1 && SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;
  bool ok() const { return ok_; }

  // The certificate served, as PEM ("" without a handshake).
  std::string served() const {
    if (!ok_) return "";
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    X509_free(cert);
    return pem;
  }

  // Sends `request` and reads until the server closes (or 10 s without a byte).
  std::string exchange(const std::string& request) {
    if (!ok_ || SSL_write(ssl_, request.data(), static_cast<int>(request.size())) <= 0) return "";
    std::string out;
    char buf[4096];
    int n = 0;
    while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

std::string https(uint16_t port, const std::string& target) {
  return "https://127.0.0.1:" + std::to_string(port) + target;
}

// The admin API over HTTPS with the token: GET `target`'s body, "" unless 200.
std::string api_get(const Serve& s, const CertDir& certs, const std::string& target) {
  const Curl r = curl("-f --cacert " + certs.path("ca.crt") + " -H 'Authorization: Bearer " +
                      Serve::kToken + "' " + https(s.api_port(), target));
  return r.status == 0 ? r.out : "";
}

TEST(Tls, StreamsThroughTheGatewayAndServesTheApiOverHttps) {
  CertDir certs("stream");
  certs.write(make_test_pki());
  Options o;
  o.token_rate = "20";
  o.server_extra = certs.tls("tls") + certs.tls("api_tls");
  Serve s("tls_stream", o);
  EXPECT_NE(s.log_text().find("gateway on https://127.0.0.1:"), std::string::npos);
  EXPECT_NE(s.log_text().find("server.tls: subject /CN=kube-apiserver"), std::string::npos)
      << s.log_text();

  // Held while the first replica starts (min_replicas 0), then streamed: 10 tokens at 20/s.
  const Curl stream =
      curl("-N --cacert " + certs.path("ca.crt") +
           " -H 'Content-Type: application/json' -d '{\"prompt\": \"hi\", \"max_tokens\": 10, "
           "\"stream\": true}' -w '\\n%{http_code} %{time_starttransfer} %{time_total}' " +
           https(s.port(), "/chat/v1/completions"));
  ASSERT_EQ(stream.status, 0) << stream.out;
  EXPECT_NE(stream.out.find("data: [DONE]"), std::string::npos) << stream.out;
  size_t events = 0;
  for (size_t at = stream.out.find("data: "); at != std::string::npos;
       at = stream.out.find("data: ", at + 1))
    ++events;
  EXPECT_GE(events, 10u) << stream.out;
  double first = 0, total = 0;
  int code = 0;
  const std::string tail = stream.out.substr(stream.out.rfind('\n') + 1);
  ASSERT_EQ(std::sscanf(tail.c_str(), "%d %lf %lf", &code, &first, &total), 3) << tail;
  EXPECT_EQ(code, 200);
  // The answer came piece by piece: its last token at least 0.3 s after its head.
  EXPECT_GT(total - first, 0.3) << tail;

  // Plain HTTP at the TLS listener gets no answer.
  EXPECT_NE(curl("http://127.0.0.1:" + std::to_string(s.port()) + "/chat/v1/models").status, 0);
  // A client that does not trust the certificate refuses it.
  EXPECT_NE(curl(https(s.port(), "/v1/models")).status, 0);

  // The admin API: the token still required, the CLI with --cacert or TIDE_CACERT.
  const json chat = json::parse(api_get(s, certs, "/v1/endpoints/chat"), nullptr, false);
  EXPECT_TRUE(chat.is_object() && chat.contains("groups")) << chat;
  const Curl no_token = curl("-o /dev/null -w '%{http_code}' --cacert " + certs.path("ca.crt") +
                             " " + https(s.api_port(), "/v1/endpoints"));
  EXPECT_EQ(no_token.out, "401");
  const std::string api = "--api " + https(s.api_port(), "");
  const CliRun status =
      tide_cli("status " + api + " --token " + Serve::kToken + " --cacert " + certs.path("ca.crt"));
  EXPECT_EQ(status.status, 0) << status.out;
  EXPECT_NE(status.out.find("chat"), std::string::npos) << status.out;
  const CliRun by_env =
      tide_cli("status --json " + api, "TIDE_API_TOKEN=" + std::string(Serve::kToken) +
                                           " TIDE_CACERT=" + certs.path("ca.crt"));
  EXPECT_EQ(by_env.status, 0) << by_env.out;
  const CliRun untrusted = tide_cli("status " + api + " --token " + Serve::kToken);
  EXPECT_EQ(untrusted.status, 1) << untrusted.out;
  EXPECT_NE(untrusted.out.find("certificate is not trusted"), std::string::npos) << untrusted.out;
}

TEST(Tls, SighupSwitchesTheCertificateForNewConnections) {
  CertDir certs("reload");
  const TestPki first = make_test_pki();
  const TestPki second = make_test_pki();
  ASSERT_NE(first.server_cert_pem, second.server_cert_pem);
  certs.write(first);
  Options o;
  o.server_extra = certs.tls("tls");
  Serve s("tls_reload", o);
  TlsClient before(s.port());
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before.served(), first.server_cert_pem);

  certs.write(second);
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  ASSERT_TRUE(
      eventually([&] { return TlsClient(s.port()).served() == second.server_cert_pem; }, 10))
      << s.log_text();
  EXPECT_NE(s.log_text().find("SIGHUP: server.tls: reloaded"), std::string::npos);
  // The connection opened before keeps its certificate and still works.
  const std::string answer =
      before.exchange("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
  EXPECT_EQ(before.served(), first.server_cert_pem);

  // A bad file on reload: logged, and the certificate in use stays.
  std::ofstream(certs.path("server.crt")) << "not a certificate\n";
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually(
      [&] { return s.log_text().find("kept the previous certificate") != std::string::npos; }, 10))
      << s.log_text();
  EXPECT_NE(s.log_text().find("server.tls.cert_file: " + certs.path("server.crt") +
                              " holds no PEM certificate"),
            std::string::npos)
      << s.log_text();
  EXPECT_EQ(TlsClient(s.port()).served(), second.server_cert_pem);
}

TEST(Tls, BadCertificateFilesAreConfigErrorsNamingFieldAndFile) {
  CertDir certs("bad");
  certs.write(make_test_pki());
  const TestPki other = make_test_pki();
  std::ofstream(certs.path("other.key")) << other.server_key_pem;
  auto serve_with = [&](const std::string& tls) {
    std::ofstream(certs.path("tide.yaml"))
        << "server: {listen: 127.0.0.1:0, api: 127.0.0.1:0" << tls
        << "}\nstate: {path: \":memory:\"}\nendpoints: [{name: a, groups: [{name: g, provisioner: "
           "{kind: static, urls: [\"http://127.0.0.1:1\"]}}]}]\n";
    return tide_cli("serve --config " + certs.path("tide.yaml"));
  };
  const CliRun missing = serve_with(", tls: {cert_file: /nonexistent/server.crt, key_file: \"" +
                                    certs.path("server.key") + "\"}");
  EXPECT_EQ(missing.status, 2) << missing.out;
  EXPECT_NE(missing.out.find("server.tls.cert_file: cannot read /nonexistent/server.crt: No such "
                             "file or directory"),
            std::string::npos)
      << missing.out;
  const CliRun mismatch = serve_with(", api_tls: {cert_file: \"" + certs.path("server.crt") +
                                     "\", key_file: \"" + certs.path("other.key") + "\"}");
  EXPECT_EQ(mismatch.status, 2) << mismatch.out;
  EXPECT_NE(mismatch.out.find("server.api_tls.key_file: the key in " + certs.path("other.key") +
                              " does not match the certificate in " + certs.path("server.crt")),
            std::string::npos)
      << mismatch.out;
  // `tide validate` finds the same, with the file's name.
  const CliRun validate = tide_cli("validate " + certs.path("tide.yaml"));
  EXPECT_EQ(validate.status, 2) << validate.out;
  EXPECT_NE(validate.out.find(certs.path("tide.yaml") + ": server.api_tls.key_file: the key in"),
            std::string::npos)
      << validate.out;
  const CliRun not_a_key = serve_with(", tls: {cert_file: \"" + certs.path("server.crt") +
                                      "\", key_file: \"" + certs.path("ca.crt") + "\"}");
  EXPECT_EQ(not_a_key.status, 2) << not_a_key.out;
  EXPECT_NE(not_a_key.out.find("server.tls.key_file: " + certs.path("ca.crt") +
                               " holds no unencrypted PEM private key"),
            std::string::npos)
      << not_a_key.out;
}

// Whether the server closed `fd` (a read finds EOF or a reset) within `seconds`.
bool closed_within(int fd, double seconds) {
  return eventually(
      [&] {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        char byte = 0;
        return ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
      },
      seconds);
}

TEST(Tls, SilentAndGarbageClientsDoNotHurtOthers) {
  CertDir certs("silent");
  certs.write(make_test_pki());
  Options o;
  o.min_replicas = 1;
  o.service = "fixed:10ms";
  o.server_extra = certs.tls("tls") + ", read_timeout: 1s, max_connections: 40";
  Serve s("tls_silent", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") >= 1; }, 10)) << s.log_text();
  // Connections that never start a handshake, and some that send plain HTTP instead of one.
  std::vector<int> silent, garbage;
  for (int i = 0; i < 20; ++i) silent.push_back(http_connect(s.port()));
  for (int i = 0; i < 5; ++i) {
    garbage.push_back(http_connect(s.port()));
    const std::string plain = "GET /chat/v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::send(garbage.back(), plain.data(), plain.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(plain.size()));
  }
  // Others are served meanwhile, at once.
  for (int i = 0; i < 3; ++i) {
    const Curl r =
        curl("-o /dev/null -w '%{http_code} %{time_total}' --cacert " + certs.path("ca.crt") +
             " -d '{\"prompt\": \"hi\"}' " + https(s.port(), "/chat/v1/completions"));
    double took = 99;
    int code = 0;
    ASSERT_EQ(std::sscanf(r.out.c_str(), "%d %lf", &code, &took), 2) << r.out;
    EXPECT_EQ(code, 200) << r.out;
    EXPECT_LT(took, 1.0) << r.out;
  }
  for (int fd : garbage) EXPECT_TRUE(closed_within(fd, 1)) << "garbage was not refused at once";
  // The silent ones are closed once the handshake's time (server.read_timeout) has passed.
  for (int fd : silent) EXPECT_TRUE(closed_within(fd, 5)) << "a silent client was kept";
  for (int fd : silent) ::close(fd);
  for (int fd : garbage) ::close(fd);
  // Their places under server.max_connections are given back.
  EXPECT_TRUE(eventually(
      [&] {
        const Curl r = curl("-H 'Authorization: Bearer " + std::string(Serve::kToken) +
                            "' http://127.0.0.1:" + std::to_string(s.api_port()) + "/metrics");
        return r.out.find("tide_gateway_open_connections{listener=\"gateway\"} 0") !=
               std::string::npos;
      },
      5));
}

TEST(Tls, BodyLimitAndReadTimeoutHoldOverTls) {
  CertDir certs("limits");
  certs.write(make_test_pki());
  Options o;
  o.server_extra = certs.tls("tls") + ", read_timeout: 1s, max_body_bytes: 1024";
  Serve s("tls_limits", o);
  std::ofstream(certs.path("big.json")) << "{\"prompt\": \"" << std::string(2048, 'x') << "\"}";
  const Curl big = curl("-w '\n%{http_code}' --cacert " + certs.path("ca.crt") + " -d @" +
                        certs.path("big.json") + " " + https(s.port(), "/chat/v1/completions"));
  EXPECT_TRUE(big.out.ends_with("\n413")) << big.out;
  EXPECT_NE(big.out.find("server.max_body_bytes"), std::string::npos) << big.out;
  // A request whose head never ends: 408 once read_timeout has passed.
  TlsClient slow(s.port());
  ASSERT_TRUE(slow.ok());
  const auto start = SteadyTime::now();
  const std::string answer = slow.exchange("POST /chat/v1/completions HTTP/1.1\r\nHost: x\r\n");
  const double took = std::chrono::duration<double>(SteadyTime::now() - start).count();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 408")) << answer;
  EXPECT_GT(took, 0.9);
  EXPECT_LT(took, 5.0);
}

}  // namespace
}  // namespace tide::test
