// The concrete scaling policies and the modifiers wrapper, for make_decider and for tests.
//
// Each factory returns a fresh decider with its own state; one instance serves one worker group
// and is called from one thread. All of them are pure in the sense of decider.h: time comes from
// `Observation::now`, nothing reads a clock or does I/O.
#pragma once

#include <memory>

#include "tide/config/config.h"
#include "tide/policy/decider.h"

namespace tide::policy {

// ViewComfy: a replica starts whenever queued > queue_size x replicas; each replica stops after
// idle_timeout without work.
std::unique_ptr<Decider> make_queue_policy(const config::QueuePolicy& params);

// The Kubernetes HPA algorithm (sync period, tolerance, stabilization windows, rate limits) on
// any per-replica metric, plus KEDA-like activation from zero replicas.
std::unique_ptr<Decider> make_target_policy(const config::TargetPolicy& params);

// The Knative pod autoscaler: stable and panic windows, scale rates, scale-down delay and
// scale-to-zero grace.
std::unique_ptr<Decider> make_concurrency_policy(const config::ConcurrencyPolicy& params);

// EC2 / SageMaker step scaling with per-direction cooldowns.
std::unique_ptr<Decider> make_step_policy(const config::StepPolicy& params);

// Applies, after `inner`: bounds (min/max from the Observation, at least 1 with `min_one`), idle
// scale to zero, hysteresis, up/down intervals and up/down delays, in that order.
std::unique_ptr<Decider> wrap_with_modifiers(std::unique_ptr<Decider> inner,
                                             const config::Modifiers& modifiers, bool min_one);

}  // namespace tide::policy
