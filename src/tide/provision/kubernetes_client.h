// An HTTP(S) client of one Kubernetes API server, asynchronous on a strand of the provisioner's
// io_context. Internal to src/tide/provision (brings in Asio); strand only.
//
// Each request opens its own connection (requests are few: a create or delete per replica, a
// list per resync); a watch holds one connection for as long as the server keeps it open.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "tide/provision/internal.h"
#include "tide/provision/kubernetes_api.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace tide::provision::detail {

struct ApiResponse {
  unsigned status = 0;  // 0: no answer; `error` says why
  std::string body;
  std::string error;  // "connect 10.0.0.1:443: Connection refused"

  bool ok() const { return status >= 200 && status < 300; }
  // What went wrong, in words: the transport error or the API's Status message.
  std::string describe() const;
};

class KubeClient : public std::enable_shared_from_this<KubeClient> {
 public:
  // Throws kube::KubeError when the certificates or key of `access` cannot be loaded.
  KubeClient(Strand strand, kube::ClusterAccess access);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  const kube::ClusterAccess& access() const { return access_; }

  // `method` GET, POST or DELETE; `path` from /api/... on (the server's base path is added).
  // The whole exchange is bounded by `timeout`.
  //
  // Callers pass named variables to these coroutines, never temporaries: g++ 12 destroys the
  // temporaries of a co_await expression twice when the awaiting coroutine is destroyed while
  // suspended (as when the io_context goes away with it).
  asio::awaitable<ApiResponse> request(std::string_view method, const std::string& path,
                                       const std::string& body, Duration timeout);

  // A streaming GET (a watch): `on_line` gets each line of a 200 answer's body as it arrives
  // and returns false to end the stream. Ends also when the server ends the answer, on an
  // error, after `idle` without a byte, or on cancel_all(). A non-200 answer is returned whole,
  // without calls to on_line.
  asio::awaitable<ApiResponse> stream(const std::string& path,
                                      std::function<bool(std::string_view)> on_line, Duration idle);

  // Ends every request and stream in flight (they return an error "cancelled").
  void cancel_all();

 private:
  struct Connection;
  class Tracked;
  asio::awaitable<std::string> connect(Connection& c, Duration timeout);
  std::string target(const std::string& path) const;
  uint64_t track(std::function<void()> cancel);
  void untrack(uint64_t id);

  Strand strand_;
  kube::ClusterAccess access_;
  std::unique_ptr<asio::ssl::context> ssl_;
  uint64_t next_op_ = 0;
  std::map<uint64_t, std::function<void()>> in_flight_;
  bool cancelled_ = false;
};

}  // namespace tide::provision::detail
