// The wait before a retry: exponential growth, a cap, and jitter so that triggers failing
// together do not retry together.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

#include <kt/options.hpp>

namespace kt::detail {

/// Wait before retry `attempt` (1: the first retry): min(max_backoff, initial_backoff ·
/// multiplier^(attempt-1)), times a uniform draw from [1 - jitter, 1 + jitter].
inline std::chrono::milliseconds retry_backoff(const retry_policy& policy, unsigned attempt,
                                               std::minstd_rand& random) {
    double delay = static_cast<double>(policy.initial_backoff.count());
    for (unsigned i = 1; i < attempt; ++i) delay *= std::max(1.0, policy.multiplier);
    delay = std::min(delay, static_cast<double>(policy.max_backoff.count()));
    const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> spread(1.0 - jitter, 1.0 + jitter);
    return std::chrono::milliseconds(static_cast<std::int64_t>(delay * spread(random)));
}

}  // namespace kt::detail
