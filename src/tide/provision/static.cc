// The static provisioner: replicas are servers that already run at configured URLs.
#include <fmt/format.h>

#include <optional>

#include "tide/net/address.h"
#include "tide/provision/backends.h"

namespace tide::provision::detail {

namespace {

struct Url {
  std::string host;  // without brackets
  uint16_t port = 80;
  std::string address;  // "host:port", brackets kept for IPv6
};

// Parses http://host[:port][/path]; the path is ignored. Error text on failure.
std::optional<Url> parse_url(std::string_view url, std::string& error) {
  constexpr std::string_view kHttp = "http://";
  if (url.substr(0, kHttp.size()) != kHttp) {
    error = fmt::format("{}: only http:// URLs can be probed", url);
    return std::nullopt;
  }
  std::string_view rest = url.substr(kHttp.size());
  rest = rest.substr(0, rest.find_first_of("/?#"));
  net::AuthorityError why{};
  auto parsed = net::parse_authority(rest, why);
  if (!parsed) {
    constexpr std::string_view kWhy[] = {"unterminated [ in host", "expected :port after ]",
                                         "no host", "bad port"};
    error = fmt::format("{}: {}", url, kWhy[static_cast<int>(why)]);
    return std::nullopt;
  }
  Url u;
  u.host = std::move(parsed->host);
  if (parsed->port) u.port = *parsed->port;
  u.address = net::join_host_port(u.host, u.port);
  return u;
}

}  // namespace

void StaticBackend::launch(Launch l) {
  if (core_->closed) return;
  auto fail = [&](std::string error) {
    l.events->on_replica_failed(l.id, core_->clock.now(), std::move(error));
  };
  if (shutting_down_) return fail("provisioner is shutting down");
  if (held_.count(l.key)) return;  // launched twice: keep the first
  const std::string* free_url = nullptr;
  for (const std::string& url : l.spec.urls) {
    if (!urls_in_use_.count(url)) {
      free_url = &url;
      break;
    }
  }
  if (free_url == nullptr)
    return fail(
        fmt::format("no free url: all {} urls of provisioner.urls are in use", l.spec.urls.size()));
  std::string error;
  const auto url = parse_url(*free_url, error);
  if (!url) return fail(error);

  urls_in_use_.insert(*free_url);
  Held& h = held_[l.key];
  h.id = l.id;
  h.events = l.events;
  h.url = *free_url;
  l.events->on_replica_starting(l.id, core_->clock.now());
  ProbeTarget target{url->host, url->port, l.spec.ready, core_->options.liveness_interval,
                     core_->options.liveness_failures};
  h.watch = std::make_shared<Watch>(core_->strand, std::move(target));
  read_engine_metrics(*h.watch, l, core_);
  std::weak_ptr<StaticBackend> weak_self = weak_from_this();
  h.watch->start(
      [weak_self, key = l.key, address = url->address] {
        auto self = weak_self.lock();
        if (!self || self->core_->closed) return;
        auto it = self->held_.find(key);
        if (it == self->held_.end()) return;
        it->second.events->on_replica_ready(it->second.id, self->core_->clock.now(), address);
      },
      [weak_self, key = l.key](std::string why) {
        auto self = weak_self.lock();
        if (!self || self->core_->closed) return;
        auto it = self->held_.find(key);
        if (it == self->held_.end()) return;
        const uint64_t id = it->second.id;
        control::ReplicaEvents* events = it->second.events;
        const std::string held_url = it->second.url;
        self->release(key);
        events->on_replica_failed(id, self->core_->clock.now(),
                                  fmt::format("{}: {}", held_url, why));
      });
}

void StaticBackend::release(const std::string& key) {
  auto it = held_.find(key);
  if (it == held_.end()) return;
  if (it->second.watch) it->second.watch->cancel();
  urls_in_use_.erase(it->second.url);
  held_.erase(it);
}

void StaticBackend::stop(const std::string& key) { release(key); }

void StaticBackend::shutdown() {
  shutting_down_ = true;
  while (!held_.empty()) release(held_.begin()->first);
}

}  // namespace tide::provision::detail
