// For tests: a fake of the Kubernetes API endpoints the kubernetes provisioner uses, over real
// HTTP (or HTTPS with a throwaway CA) on 127.0.0.1, served by a thread of its own.
//
//   GET    /api/v1/namespaces/NS/pods?labelSelector=...            a PodList
//   GET    /api/v1/namespaces/NS/pods?...&watch=true&resourceVersion=RV   watch events, chunked
//   GET    /api/v1/namespaces/NS/pods/NAME                         a Pod
//   POST   /api/v1/namespaces/NS/pods                              201 and the Pod
//   DELETE /api/v1/namespaces/NS/pods/NAME                         200, then a DELETED event
//
// Pods live in memory with a resourceVersion counter and a history that watches replay from.
// The answers are built from the recorded API answers in tests/data/kubernetes: a new pod gets
// the status of pod-created.json, set_status() copies the status of another recording, and the
// errors are the recorded Status objects. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tide::provision::testing {

// The text of tests/data/kubernetes/<name>.
std::string recorded(const std::string& name);

// A CA made for one test run, a server certificate for 127.0.0.1 and a client certificate.
struct TestPki {
  std::string ca_pem;
  std::string server_cert_pem;
  std::string server_key_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
};
TestPki make_test_pki();

class FakeKubeApi {
 public:
  struct Options {
    bool tls = false;
    std::string token = "test-token";  // required as "Authorization: Bearer ..."; "" = none
    bool client_cert = false;          // https: require a client certificate of the test CA
  };
  explicit FakeKubeApi(Options options);
  FakeKubeApi() : FakeKubeApi(Options{}) {}
  ~FakeKubeApi();
  FakeKubeApi(const FakeKubeApi&) = delete;
  FakeKubeApi& operator=(const FakeKubeApi&) = delete;

  std::string server() const;  // "http://127.0.0.1:PORT" or "https://..."
  const TestPki& pki() const;
  // Writes a kubeconfig for this server (token, or client certificate) into `dir`; its path.
  std::string write_kubeconfig(const std::string& dir) const;

  // Called on the server's thread after each pod is created (the "kubelet"); default: none,
  // the pod stays Pending.
  void on_create(std::function<void(const std::string& ns, const std::string& name)> hook);
  // Called on the server's thread after a pod is gone (deleted through the API or remove()).
  void on_delete(std::function<void(const std::string& ns, const std::string& name)> hook);

  std::vector<std::string> pod_names(const std::string& ns) const;
  std::optional<nlohmann::json> pod(const std::string& ns, const std::string& name) const;
  // Gives the pod the status of a recording ("pod-running", "pod-evicted", ...), with `ip` as
  // its podIP when given, and the recording's node. A MODIFIED event.
  void set_status(const std::string& ns, const std::string& name, const std::string& recording,
                  const std::string& ip = "");
  // Deleted by someone else at once: a DELETED event.
  void remove(const std::string& ns, const std::string& name);
  // Adds a pod made elsewhere (as by an earlier run of tide): an ADDED event.
  void put(nlohmann::json pod);

  // The next `times` requests with this method get `status` and `body` instead of an answer.
  void fail_next(const std::string& method, unsigned status, std::string body, int times = 1);
  // Ends every open watch with an ERROR 410 event and forgets the history (as etcd compaction
  // does): watchers must list again.
  void expire_watches();
  // Sends a BOOKMARK with the current resourceVersion to every open watch.
  void bookmark();

  int count(const std::string& method) const;   // requests received with this method
  int watches() const;                          // watch requests received
  std::vector<nlohmann::json> created() const;  // the bodies of the pods created

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// What the pods' containers serve, for tide's probes: GET /health on 127.0.0.1:port() answers
// 200 while healthy, else 503. Every fake pod's IP is 127.0.0.1 and port this port.
class FakePodServer {
 public:
  FakePodServer();
  ~FakePodServer();
  uint16_t port() const;
  void set_healthy(bool healthy);
  int probes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tide::provision::testing
