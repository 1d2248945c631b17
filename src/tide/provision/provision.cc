#include "tide/provision/provision.h"

#include <fmt/format.h>
#include <boost/asio/post.hpp>

#include "tide/provision/backends.h"
#include "tide/provision/kubernetes.h"
#include "tide/provision/slurm_backend.h"

namespace tide::provision {

struct LiveProvisioner::Impl {
  Impl(boost::asio::io_context& io, const Clock& clock, ProvisionOptions options)
      : core(std::make_shared<detail::Core>(io, clock, std::move(options))),
        local(std::make_shared<detail::LocalBackend>(core)),
        statics(std::make_shared<detail::StaticBackend>(core)),
        slurm(std::make_shared<detail::SlurmBackend>(core)),
        kubernetes(std::make_shared<detail::KubernetesBackend>(core)) {}
  std::shared_ptr<detail::Core> core;
  std::shared_ptr<detail::LocalBackend> local;
  std::shared_ptr<detail::StaticBackend> statics;
  std::shared_ptr<detail::SlurmBackend> slurm;
  std::shared_ptr<detail::KubernetesBackend> kubernetes;
};

namespace {
detail::Launch make_launch(const ProvisionOptions& options, const control::Replica& replica,
                           const config::GroupSpec& group, control::ReplicaEvents& events) {
  detail::Launch l;
  l.id = replica.id;
  l.name = replica.name.empty() ? fmt::format("replica-{}", replica.id) : replica.name;
  l.key = replica.name.empty() ? fmt::format("#{}", replica.id) : replica.name;
  l.spec = group.provisioner;
  l.events = &events;
  // Without an agent, the probe reads the model server's metrics page.
  if (group.engine_metrics.enabled && !group.agent.enabled) l.engine = group.engine_metrics;
  if (group.agent.enabled && options.agent) {
    AgentLaunch a = options.agent(replica, group);
    std::vector<std::string> argv = {
        a.program,
        "agent",
        "--slots",
        std::to_string(group.concurrency),
        "--health",
        group.provisioner.ready.path,
        "--report-interval",
        format_duration(group.agent.report_interval),
        "--work",
        group.agent.work == config::AgentSpec::Work::kTokens ? "tokens" : "requests"};
    if (group.engine_metrics.enabled) {
      const config::EngineMetricsSpec& e = group.engine_metrics;
      argv.insert(argv.end(),
                  {"--engine-metrics", e.path, "--engine-kind",
                   std::string(metrics::engine_kind_name(e.kind)), "--engine-interval",
                   format_duration(e.interval), "--engine-timeout", format_duration(e.timeout),
                   "--engine-max-bytes", std::to_string(e.max_bytes)});
    }
    argv.insert(argv.end(), a.args.begin(), a.args.end());
    l.agent_argv = std::move(argv);
    l.agent_env = std::move(a.env);
  } else if (group.agent.enabled) {
    l.agent_argv = std::vector<std::string>{};  // refused by the backend: nothing to run it with
  }
  return l;
}
}  // namespace

LiveProvisioner::LiveProvisioner(boost::asio::io_context& io, const Clock& clock,
                                 ProvisionOptions options)
    : impl_(std::make_shared<Impl>(io, clock, std::move(options))) {}

LiveProvisioner::~LiveProvisioner() {
  impl_->core->closed = true;
  impl_->local->close();
  impl_->slurm->close();
  boost::asio::post(impl_->core->strand, [statics = impl_->statics] { statics->shutdown(); });
  boost::asio::post(impl_->core->strand, [k = impl_->kubernetes] { k->close(); });
}

bool LiveProvisioner::supports(std::string_view kind) {
  return kind == "local" || kind == "static" || kind == "slurm" || kind == "kubernetes";
}

std::string LiveProvisioner::check(const config::ProvisionerSpec& spec) {
  if (spec.kind != "kubernetes") return "";
  try {
    kube::resolve_access(spec);
  } catch (const kube::KubeError& e) {
    return e.what();
  }
  return "";
}

void LiveProvisioner::launch(const control::Replica& replica, const config::GroupSpec& group,
                             control::ReplicaEvents& events) {
  detail::Launch l = make_launch(impl_->core->options, replica, group, events);
  boost::asio::post(impl_->core->strand, [impl = impl_, l = std::move(l)]() mutable {
    if (impl->core->closed) return;
    if (l.spec.kind == "local") return impl->local->launch(std::move(l));
    if (l.spec.kind == "static") return impl->statics->launch(std::move(l));
    if (l.spec.kind == "slurm") return impl->slurm->launch(std::move(l));
    if (l.spec.kind == "kubernetes") return impl->kubernetes->launch(std::move(l));
    l.events->on_replica_failed(l.id, impl->core->clock.now(),
                                fmt::format("provisioner kind \"{}\" cannot run live replicas "
                                            "(use local, static, slurm or kubernetes)",
                                            l.spec.kind));
  });
}

void LiveProvisioner::stop(const control::Replica& replica) {
  std::string key = replica.name.empty() ? fmt::format("#{}", replica.id) : replica.name;
  boost::asio::post(impl_->core->strand, [impl = impl_, key = std::move(key)] {
    if (impl->core->closed) return;
    impl->local->stop(key);
    impl->statics->stop(key);
    impl->slurm->stop(key);
    impl->kubernetes->stop(key);
  });
}

bool LiveProvisioner::adopt(const control::Replica& replica, const config::GroupSpec& group,
                            const std::string& handle, control::ReplicaEvents& events) {
  const std::string& kind = group.provisioner.kind;
  if (kind == "static") {
    launch(replica, group, events);  // its URL is still there, or another free one is
    return true;
  }
  if (kind == "slurm") {
    const auto job = detail::parse_slurm_handle(handle);
    if (!job) return false;
    boost::asio::post(impl_->core->strand,
                      [impl = impl_, l = make_launch(impl_->core->options, replica, group, events),
                       id = *job]() mutable {
                        if (!impl->core->closed) impl->slurm->adopt(std::move(l), id);
                      });
    return true;
  }
  const bool local = kind == "local" && handle.starts_with("local ");
  const bool kubernetes = kind == "kubernetes" && kube::parse_handle(handle);
  if (!local && !kubernetes) return false;
  boost::asio::post(impl_->core->strand,
                    [impl = impl_, l = make_launch(impl_->core->options, replica, group, events),
                     handle, local]() mutable {
                      if (impl->core->closed) return;
                      if (local) return impl->local->adopt(std::move(l), handle);
                      impl->kubernetes->adopt(std::move(l), handle);
                    });
  return true;
}

void LiveProvisioner::shutdown(std::function<void()> done) {
  boost::asio::post(impl_->core->strand, [impl = impl_, done = std::move(done)]() mutable {
    impl->statics->shutdown();
    // `done` once the local children have exited, the Slurm jobs are cancelled and the pods
    // deleted.
    auto left = std::make_shared<int>(3);
    auto one_done = [left, done = std::move(done)] {
      if (--*left == 0 && done) done();
    };
    impl->local->shutdown(one_done);
    impl->slurm->shutdown(one_done);
    impl->kubernetes->shutdown(one_done);
  });
}

std::vector<ChildProcess> LiveProvisioner::children() const { return impl_->local->children(); }

}  // namespace tide::provision
