#include "tide/testing/fake_kube_api.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tide::provision::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::awaitable;
using asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// ---- PKI -------------------------------------------------------------------------------------

struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertDeleter {
  void operator()(X509* x) const { X509_free(x); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Cert = std::unique_ptr<X509, CertDeleter>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Cert make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, long serial,
               const std::vector<std::pair<int, const char*>>& exts) {
  Cert cert(X509_new());
  check(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  for (const auto& [nid, value] : exts)
    add_ext(cert.get(), issuer ? issuer : cert.get(), nid, value);
  check(X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "sign");
  return cert;
}

std::string to_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string to_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

Key new_key() {
  Key k(EVP_EC_gen("P-256"));
  check(k != nullptr, "key");
  return k;
}

// ---- requests --------------------------------------------------------------------------------

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> query_params(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    const size_t eq = item.find('=');
    out[url_decode(item.substr(0, eq))] =
        eq == std::string_view::npos ? "" : url_decode(item.substr(eq + 1));
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return out;
}

// Equality selectors only: "a=b,c=d".
bool matches(const json& pod, const std::string& selector) {
  std::string_view rest = selector;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view term = rest.substr(0, comma);
    const size_t eq = term.find('=');
    const std::string key(term.substr(0, eq));
    const std::string value(eq == std::string_view::npos ? "" : term.substr(eq + 1));
    const json& labels = pod["metadata"].value("labels", json::object());
    if (!labels.contains(key) || labels[key] != value) return false;
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return true;
}

std::string status_json(unsigned code, const std::string& reason, const std::string& message) {
  return json{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
              {"status", "Failure"}, {"message", message}, {"reason", reason},
              {"code", code}}
      .dump();
}

// A recorded Status with the recorded pod name replaced by `name`.
std::string recorded_status(const std::string& file, const std::string& name) {
  std::string text = json::parse(recorded(file)).dump();
  const std::string recorded_name = "tide-chat-h100-3-k7x2p";
  for (size_t at = text.find(recorded_name); at != std::string::npos;
       at = text.find(recorded_name, at + name.size()))
    text.replace(at, recorded_name.size(), name);
  return text;
}

}  // namespace

std::string recorded(const std::string& name) {
  const std::string path = std::string(TIDE_KUBE_DATA) + "/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("no recording " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TestPki make_test_pki() {
  TestPki pki;
  const Key ca_key = new_key();
  const Cert ca = make_cert(ca_key.get(), "tide-test-ca", nullptr, nullptr, 1,
                            {{NID_basic_constraints, "critical,CA:TRUE"},
                             {NID_key_usage, "critical,keyCertSign,cRLSign"}});
  const Key server_key = new_key();
  const Cert server = make_cert(server_key.get(), "kube-apiserver", ca.get(), ca_key.get(), 2,
                                {{NID_basic_constraints, "CA:FALSE"},
                                 {NID_ext_key_usage, "serverAuth"},
                                 {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"}});
  const Key client_key = new_key();
  const Cert client =
      make_cert(client_key.get(), "tide", ca.get(), ca_key.get(), 3,
                {{NID_basic_constraints, "CA:FALSE"}, {NID_ext_key_usage, "clientAuth"}});
  pki.ca_pem = to_pem(ca.get());
  pki.server_cert_pem = to_pem(server.get());
  pki.server_key_pem = to_pem(server_key.get());
  pki.client_cert_pem = to_pem(client.get());
  pki.client_key_pem = to_pem(client_key.get());
  return pki;
}

// ---- the server ------------------------------------------------------------------------------

struct FakeKubeApi::Impl {
  struct Watcher {
    explicit Watcher(asio::io_context& io) : wake(io) {}
    std::string ns;
    std::string selector;
    asio::steady_timer wake;
    std::deque<std::string> lines;  // guarded by Impl::mu
    bool end = false;               // guarded by Impl::mu
  };
  struct Event {
    int64_t rv;
    std::string ns;
    std::string line;
    json pod;
  };
  struct Fault {
    std::string method;
    unsigned status;
    std::string body;
    int times;
  };

  explicit Impl(Options o) : options(std::move(o)), ssl_ctx(ssl::context::tls_server) {}

  Options options;
  TestPki pki;
  asio::io_context io;
  ssl::context ssl_ctx;
  std::optional<tcp::acceptor> acceptor;
  uint16_t port = 0;
  std::thread thread;

  mutable std::mutex mu;
  std::map<std::pair<std::string, std::string>, json> pods;
  int64_t rv = 48000;
  int64_t compacted = 0;  // watches from at or below this are too old
  std::vector<Event> history;
  std::vector<std::shared_ptr<Watcher>> watchers;
  std::vector<Fault> faults;
  std::map<std::string, int> counts;
  int watch_count = 0;
  std::vector<json> created;
  using Hook = std::function<void(const std::string&, const std::string&)>;
  Hook create_hook;  // guarded by mu
  Hook delete_hook;  // guarded by mu

  // Runs the hook `member` holds (when it is called) on the server's thread, outside the lock.
  void call_later(Hook Impl::*member, const std::string& ns, const std::string& name) {
    asio::post(io, [this, member, ns, name] {
      Hook hook;
      {
        std::lock_guard lock(mu);
        hook = this->*member;
      }
      if (hook) hook(ns, name);
    });
  }
  uint64_t next_uid = 1;

  // Under mu: records an event and hands it to the watchers of its namespace.
  void emit(const std::string& type, const std::string& ns, const json& pod) {
    const std::string line = json{{"type", type}, {"object", pod}}.dump() + "\n";
    history.push_back({rv, ns, line, pod});
    for (const auto& w : watchers) {
      if (w->ns == ns && matches(pod, w->selector)) {
        w->lines.push_back(line);
        asio::post(io, [w] { w->wake.cancel(); });
      }
    }
  }

  json stamp(json pod) {  // under mu
    pod["metadata"]["resourceVersion"] = std::to_string(++rv);
    return pod;
  }

  std::optional<Fault> take_fault(const std::string& method) {
    std::lock_guard lock(mu);
    for (auto it = faults.begin(); it != faults.end(); ++it) {
      if (it->method != method) continue;
      Fault f = *it;
      if (--it->times <= 0) faults.erase(it);
      return f;
    }
    return std::nullopt;
  }

  template <class Stream>
  static awaitable<bool> respond(Stream& s, unsigned status, const std::string& body,
                                 bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::server, "fake-kube-apiserver");
    res.keep_alive(keep_alive);
    res.body() = body;
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(s, res, kNoThrow);
    co_return !ec;
  }

  template <class Stream>
  awaitable<void> watch(Stream& s, const std::string& ns,
                        const std::map<std::string, std::string>& query) {
    auto params = query;
    auto w = std::make_shared<Watcher>(io);
    w->ns = ns;
    w->selector = params["labelSelector"];
    const int64_t from = params.count("resourceVersion") && !params["resourceVersion"].empty()
                             ? std::stoll(params["resourceVersion"])
                             : 0;
    {
      std::lock_guard lock(mu);
      ++watch_count;
      if (from != 0 && from < compacted) {
        w->lines.push_back(recorded("watch-expired.jsonl"));
        w->end = true;
      } else {
        for (const Event& e : history) {
          if (e.rv > from && e.ns == ns && matches(e.pod, w->selector)) w->lines.push_back(e.line);
        }
        watchers.push_back(w);
      }
    }
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Cache-Control: no-cache, private\r\n\r\n";
    auto [hec, hn] = co_await asio::async_write(s, asio::buffer(head), kNoThrow);
    bool open = !hec;
    while (open) {
      std::deque<std::string> lines;
      bool end = false;
      {
        std::lock_guard lock(mu);
        lines.swap(w->lines);
        end = w->end;
      }
      for (const std::string& line : lines) {
        const std::string chunk = fmt::format("{:x}\r\n{}\r\n", line.size(), line);
        auto [ec, n] = co_await asio::async_write(s, asio::buffer(chunk), kNoThrow);
        if (ec) open = false;
      }
      if (end && open) {
        static const std::string kLastChunk = "0\r\n\r\n";
        co_await asio::async_write(s, asio::buffer(kLastChunk), kNoThrow);
        break;
      }
      {
        std::lock_guard lock(mu);
        if (!w->lines.empty() || w->end) continue;
        // No suspension between this check and the wait: a wake-up posted after it cancels it.
        w->wake.expires_at(asio::steady_timer::time_point::max());
      }
      co_await w->wake.async_wait(kNoThrow);
    }
    std::lock_guard lock(mu);
    std::erase(watchers, w);
  }

  struct Answer {
    unsigned status = 200;
    std::string body;
    bool watch = false;  // a watch request: watch() answers it
    std::string ns;
    std::map<std::string, std::string> params;
  };

  static Answer reply(unsigned status, std::string body) {
    Answer a;
    a.status = status;
    a.body = std::move(body);
    return a;
  }

  using Params = std::map<std::string, std::string>;

  // GET of the collection: a watch (watch() answers it) or the list of matching pods.
  Answer list_pods(const std::string& ns, Params params) {
    if (params["watch"] == "true" || params["watch"] == "1") {
      Answer a;
      a.watch = true;
      a.ns = ns;
      a.params = std::move(params);
      return a;
    }
    json list = json::parse(recorded("pod-list.json"));
    list["items"] = json::array();
    {
      std::lock_guard lock(mu);
      for (const auto& [k, pod] : pods) {
        if (k.first == ns && matches(pod, params["labelSelector"])) {
          json item = pod;
          item.erase("kind");
          item.erase("apiVersion");
          list["items"].push_back(item);
        }
      }
      list["metadata"]["resourceVersion"] = std::to_string(rv);
    }
    return reply(200, list.dump());
  }

  Answer get_pod(const std::string& ns, const std::string& name) {
    std::unique_lock lock(mu);
    const auto it = pods.find({ns, name});
    if (it == pods.end()) {
      lock.unlock();
      return reply(404, recorded_status("status-not-found.json", name));
    }
    const std::string body = it->second.dump();
    lock.unlock();
    return reply(200, body);
  }

  Answer create_pod(const std::string& ns, const std::string& request_body) {
    json pod = json::parse(request_body, nullptr, false);
    if (!pod.is_object() || !pod.contains("metadata") || !pod["metadata"].contains("name")) {
      return reply(400, status_json(400, "BadRequest", "the object has no metadata.name"));
    }
    const std::string pod_name = pod["metadata"]["name"];
    if (pod["metadata"].value("namespace", ns) != ns) {
      return reply(400,
                   status_json(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace "
                               "sent on the request"));
    }
    std::string body;
    {
      std::lock_guard lock(mu);
      if (pods.count({ns, pod_name})) {
        body = recorded_status("status-already-exists.json", pod_name);
      } else {
        created.push_back(pod);
        const json shape = json::parse(recorded("pod-created.json"));
        pod["metadata"]["namespace"] = ns;
        pod["metadata"]["uid"] = fmt::format("5b8c1e0e-3f0a-4c8e-9d2f-{:012x}", next_uid++);
        pod["metadata"]["creationTimestamp"] = shape["metadata"]["creationTimestamp"];
        pod["status"] = shape["status"];
        pod = stamp(std::move(pod));
        pods[{ns, pod_name}] = pod;
        emit("ADDED", ns, pod);
      }
    }
    if (!body.empty()) return reply(409, body);
    call_later(&Impl::create_hook, ns, pod_name);  // the "kubelet" sees it after the answer
    return reply(201, pod.dump());
  }

  Answer delete_pod(const std::string& ns, const std::string& name) {
    std::string body;
    {
      std::lock_guard lock(mu);
      const auto it = pods.find({ns, name});
      if (it != pods.end()) {
        json pod = it->second;
        pod["metadata"]["deletionTimestamp"] = "2024-05-14T10:05:12Z";
        pod["metadata"]["deletionGracePeriodSeconds"] = 30;
        pod = stamp(std::move(pod));
        emit("MODIFIED", ns, pod);
        body = pod.dump();
        // The kubelet has stopped it: gone for good.
        pod["metadata"]["deletionGracePeriodSeconds"] = 0;
        pod = stamp(std::move(pod));
        pods.erase(it);
        emit("DELETED", ns, pod);
        call_later(&Impl::delete_hook, ns, name);
      }
    }
    if (body.empty()) return reply(404, recorded_status("status-not-found.json", name));
    return reply(200, body);
  }

  // The answer to one request, except a watch's.
  Answer answer(const http::request<http::string_body>& req) {
    const std::string method(req.method_string());
    const std::string target(req.target());
    {
      std::lock_guard lock(mu);
      ++counts[method];
    }
    if (auto f = take_fault(method)) return reply(f->status, f->body);
    if (!options.token.empty() && req[http::field::authorization] != "Bearer " + options.token) {
      return reply(401, json::parse(recorded("status-unauthorized.json")).dump());
    }
    static const std::regex kPods(R"(^/api/v1/namespaces/([^/?]+)/pods(/([^/?]+))?(\?(.*))?$)");
    std::smatch m;
    if (!std::regex_match(target, m, kPods)) {
      return reply(
          404, status_json(404, "NotFound", "the server could not find the requested resource"));
    }
    const std::string ns = m[1];
    const std::string name = m[3];
    const http::verb verb = req.method();
    if (verb == http::verb::get && name.empty()) return list_pods(ns, query_params(m[5].str()));
    if (verb == http::verb::get) return get_pod(ns, name);
    if (verb == http::verb::post && name.empty()) return create_pod(ns, req.body());
    if (verb == http::verb::delete_ && !name.empty()) return delete_pod(ns, name);
    return reply(405,
                 status_json(405, "MethodNotAllowed", "the server does not allow this method"));
  }

  // One request; false when the connection must close.
  template <class Stream>
  awaitable<bool> handle(Stream& s, http::request<http::string_body>& req) {
    Answer a = answer(req);
    if (a.watch) {
      co_await watch(s, a.ns, a.params);
      co_return false;
    }
    co_return co_await respond(s, a.status, a.body, req.keep_alive());
  }

  template <class Stream>
  awaitable<void> serve(Stream& s) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(s, buffer, req, kNoThrow);
      if (ec) co_return;
      if (!co_await handle(s, req)) co_return;
    }
  }

  // `self` outlives every coroutine: they are destroyed with `io`, a member.
  static awaitable<void> connection(Impl* self, tcp::socket socket) {
    if (!self->options.tls) {
      beast::tcp_stream s(std::move(socket));
      co_await self->serve(s);
      beast::error_code ec;
      s.socket().shutdown(tcp::socket::shutdown_both, ec);
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> s(beast::tcp_stream(std::move(socket)), self->ssl_ctx);
    auto [hec] = co_await s.async_handshake(ssl::stream_base::server, kNoThrow);
    if (hec) co_return;  // e.g. a client without the certificate asked for
    co_await self->serve(s);
    beast::error_code ec;
    beast::get_lowest_layer(s).socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  static awaitable<void> accept(Impl* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor->async_accept(kNoThrow);
      if (ec) co_return;
      asio::co_spawn(self->io, connection(self, std::move(socket)), asio::detached);
    }
  }
};

FakeKubeApi::FakeKubeApi(Options options) : impl_(std::make_shared<Impl>(std::move(options))) {
  Impl& m = *impl_;
  if (m.options.tls) {
    m.pki = make_test_pki();
    m.ssl_ctx.use_certificate_chain(asio::buffer(m.pki.server_cert_pem));
    m.ssl_ctx.use_private_key(asio::buffer(m.pki.server_key_pem), ssl::context::pem);
    if (m.options.client_cert) {
      m.ssl_ctx.add_certificate_authority(asio::buffer(m.pki.ca_pem));
      m.ssl_ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
  }
  m.acceptor.emplace(m.io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  m.port = m.acceptor->local_endpoint().port();
  asio::co_spawn(m.io, Impl::accept(&m), asio::detached);
  m.thread = std::thread([this] { impl_->io.run(); });
}

FakeKubeApi::~FakeKubeApi() {
  impl_->io.stop();
  impl_->thread.join();
}

std::string FakeKubeApi::server() const {
  return fmt::format("{}://127.0.0.1:{}", impl_->options.tls ? "https" : "http", impl_->port);
}

const TestPki& FakeKubeApi::pki() const { return impl_->pki; }

std::string FakeKubeApi::write_kubeconfig(const std::string& dir) const {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/kubeconfig";
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n"
      << "  cluster:\n    server: " << server() << "\n";
  if (impl_->options.tls) {
    std::ofstream(dir + "/ca.crt") << impl_->pki.ca_pem;
    out << "    certificate-authority: ca.crt\n";
  }
  out << "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tide\n"
      << "users:\n- name: tide\n  user:\n";
  if (!impl_->options.token.empty()) out << "    token: " << impl_->options.token << "\n";
  if (impl_->options.client_cert) {
    std::ofstream(dir + "/client.crt") << impl_->pki.client_cert_pem;
    std::ofstream(dir + "/client.key") << impl_->pki.client_key_pem;
    out << "    client-certificate: client.crt\n    client-key: client.key\n";
  }
  if (impl_->options.token.empty() && !impl_->options.client_cert) out << "    {}\n";
  return path;
}

void FakeKubeApi::on_create(std::function<void(const std::string&, const std::string&)> hook) {
  std::lock_guard lock(impl_->mu);
  impl_->create_hook = std::move(hook);
}

void FakeKubeApi::on_delete(std::function<void(const std::string&, const std::string&)> hook) {
  std::lock_guard lock(impl_->mu);
  impl_->delete_hook = std::move(hook);
}

std::vector<std::string> FakeKubeApi::pod_names(const std::string& ns) const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [k, pod] : impl_->pods) {
    if (k.first == ns) out.push_back(k.second);
  }
  return out;
}

std::optional<json> FakeKubeApi::pod(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->pods.find({ns, name});
  if (it == impl_->pods.end()) return std::nullopt;
  return it->second;
}

void FakeKubeApi::set_status(const std::string& ns, const std::string& name,
                             const std::string& recording, const std::string& ip) {
  const json shape = json::parse(recorded(recording + ".json"));
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->pods.find({ns, name});
  if (it == impl_->pods.end()) throw std::runtime_error("no pod " + ns + "/" + name);
  json pod = it->second;
  pod["status"] = shape["status"];
  if (!ip.empty()) {
    pod["status"]["podIP"] = ip;
    pod["status"]["podIPs"] = json::array({{{"ip", ip}}});
  }
  if (shape["spec"].contains("nodeName")) pod["spec"]["nodeName"] = shape["spec"]["nodeName"];
  if (shape["metadata"].contains("deletionTimestamp"))
    pod["metadata"]["deletionTimestamp"] = shape["metadata"]["deletionTimestamp"];
  pod = impl_->stamp(std::move(pod));
  it->second = pod;
  impl_->emit("MODIFIED", ns, pod);
}

void FakeKubeApi::remove(const std::string& ns, const std::string& name) {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->pods.find({ns, name});
  if (it == impl_->pods.end()) return;
  json pod = impl_->stamp(it->second);
  impl_->pods.erase(it);
  impl_->emit("DELETED", ns, pod);
  impl_->call_later(&Impl::delete_hook, ns, name);
}

void FakeKubeApi::put(json pod) {
  std::lock_guard lock(impl_->mu);
  const std::string ns = pod["metadata"]["namespace"];
  const std::string name = pod["metadata"]["name"];
  pod = impl_->stamp(std::move(pod));
  impl_->pods[{ns, name}] = pod;
  impl_->emit("ADDED", ns, pod);
}

void FakeKubeApi::fail_next(const std::string& method, unsigned status, std::string body,
                            int times) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.push_back({method, status, std::move(body), times});
}

void FakeKubeApi::expire_watches() {
  std::lock_guard lock(impl_->mu);
  impl_->compacted = impl_->rv;
  impl_->history.clear();
  const std::string line = recorded("watch-expired.jsonl");
  for (const auto& w : impl_->watchers) {
    w->lines.push_back(line);
    w->end = true;
    asio::post(impl_->io, [w] { w->wake.cancel(); });
  }
}

void FakeKubeApi::bookmark() {
  std::lock_guard lock(impl_->mu);
  const std::string line = json{{"type", "BOOKMARK"},
                                {"object",
                                 {{"kind", "Pod"},
                                  {"apiVersion", "v1"},
                                  {"metadata", {{"resourceVersion", std::to_string(impl_->rv)}}}}}}
                               .dump() +
                           "\n";
  for (const auto& w : impl_->watchers) {
    w->lines.push_back(line);
    asio::post(impl_->io, [w] { w->wake.cancel(); });
  }
}

int FakeKubeApi::count(const std::string& method) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->counts.find(method);
  return it == impl_->counts.end() ? 0 : it->second;
}

int FakeKubeApi::watches() const {
  std::lock_guard lock(impl_->mu);
  return impl_->watch_count;
}

std::vector<json> FakeKubeApi::created() const {
  std::lock_guard lock(impl_->mu);
  return impl_->created;
}

// ---- a pod's model server -------------------------------------------------------------------

struct FakePodServer::Impl {
  asio::io_context io;
  std::optional<tcp::acceptor> acceptor;
  std::thread thread;
  std::atomic<bool> healthy{true};
  std::atomic<int> probes{0};

  static awaitable<void> connection(Impl* self, tcp::socket socket) {
    beast::tcp_stream s(std::move(socket));
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(s, buffer, req, kNoThrow);
    if (ec) co_return;
    ++self->probes;
    const bool ok = self->healthy && req.target() == "/health";
    http::response<http::string_body> res{ok ? http::status::ok : http::status::service_unavailable,
                                          11};
    res.body() = ok ? "ok" : "loading";
    res.prepare_payload();
    res.keep_alive(false);
    co_await http::async_write(s, res, kNoThrow);
    beast::error_code ignored;
    s.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  static awaitable<void> accept(Impl* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor->async_accept(kNoThrow);
      if (ec) co_return;
      asio::co_spawn(self->io, connection(self, std::move(socket)), asio::detached);
    }
  }
};

FakePodServer::FakePodServer() : impl_(std::make_unique<Impl>()) {
  impl_->acceptor.emplace(impl_->io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(impl_->io, Impl::accept(impl_.get()), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

FakePodServer::~FakePodServer() {
  impl_->io.stop();
  impl_->thread.join();
}

uint16_t FakePodServer::port() const { return impl_->acceptor->local_endpoint().port(); }
void FakePodServer::set_healthy(bool healthy) { impl_->healthy = healthy; }
int FakePodServer::probes() const { return impl_->probes; }

}  // namespace tide::provision::testing
