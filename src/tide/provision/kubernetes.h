// The kubernetes backend of LiveProvisioner: one pod per replica, created, watched and deleted
// through the API server (docs/kubernetes.md). Internal to src/tide/provision; each method runs
// on Core::strand unless it says otherwise.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "tide/common/random.h"
#include "tide/provision/internal.h"
#include "tide/provision/kubernetes_api.h"

namespace tide::provision::detail {

class KubeClient;

class KubernetesBackend : public std::enable_shared_from_this<KubernetesBackend> {
 public:
  KubernetesBackend(std::shared_ptr<Core> core, kube::AccessSources sources = {});
  ~KubernetesBackend();

  void launch(Launch launch);
  // Takes over the pod named by `handle` (kube::parse_handle must accept it).
  void adopt(Launch launch, const std::string& handle);
  void stop(const std::string& key);
  // Deletes every pod; `done` once the API server has answered each deletion (or given up).
  void shutdown(std::function<void()> done);
  // Cancels every request and watch in flight and reports nothing more.
  void close();

 private:
  struct Cluster;
  struct Informer;
  struct Pod;

  // The cluster a spec names, its client made on first use; throws kube::KubeError.
  std::shared_ptr<Cluster> cluster_for(const config::ProvisionerSpec& spec);
  std::shared_ptr<Informer> informer_for(const std::shared_ptr<Cluster>& cluster,
                                         const std::string& ns);
  void track(const std::shared_ptr<Pod>& pod);
  void create(std::shared_ptr<Pod> pod);
  static asio::awaitable<void> run_create(std::shared_ptr<KubernetesBackend> self,
                                          std::shared_ptr<Pod> pod, std::string body);
  void arm_pending_timer(const std::shared_ptr<Pod>& pod);
  void on_pending_timeout(const std::shared_ptr<Pod>& pod);
  // What the informer of (cluster, ns) saw.
  void on_pod(Informer& informer, const kube::PodInfo& info);
  void on_pod_gone(Informer& informer, const std::string& name, const std::string& uid);
  void on_listed(Informer& informer, uint64_t list_seq);
  void on_list_error(Informer& informer, const std::string& error, bool permanent);
  void start_probe(const std::shared_ptr<Pod>& pod, const std::string& ip);
  // Reports the replica failed, forgets it and deletes its pod unless it is already going.
  void fail(const std::shared_ptr<Pod>& pod, std::string error, bool delete_pod = true);
  // Forgets a replica: no more events for it.
  void forget(const std::shared_ptr<Pod>& pod);
  void delete_pod(std::shared_ptr<Cluster> cluster, std::string ns, std::string name);
  static asio::awaitable<void> run_delete(std::shared_ptr<KubernetesBackend> self,
                                          std::shared_ptr<Cluster> cluster, std::string ns,
                                          std::string name);
  void maybe_finish_shutdown();
  std::shared_ptr<Pod> find(const Informer& informer, const std::string& name) const;

  std::shared_ptr<Core> core_;
  kube::AccessSources sources_;
  Random random_;
  std::map<std::string, std::shared_ptr<Cluster>> clusters_;    // by spec (kubeconfig, context)
  std::unordered_map<std::string, std::shared_ptr<Pod>> pods_;  // by replica key
  std::map<std::string, std::string> keys_by_pod_;  // "cluster key|ns|pod name" -> replica key
  uint64_t create_seq_ = 0;                         // counts completed creates (see on_listed)
  int operations_ = 0;                              // creates and deletes in flight
  bool shutting_down_ = false;
  std::vector<std::function<void()>> shutdown_done_;
};

}  // namespace tide::provision::detail
