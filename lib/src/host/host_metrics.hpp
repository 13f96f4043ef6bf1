// The host's metrics and health, aggregated from its parts. Any thread, under host_core's lock.
#pragma once

#include <kt/metrics.hpp>
#include <kt/options.hpp>

#include "host/consumer_pool.hpp"
#include "host/producer_pool.hpp"
#include "host/trigger_registry.hpp"

namespace kt::detail {

/// Fills `snapshot` (its time and thread count already set) with every consumer, trigger and
/// producer, the scaling advice per group and the health judged against `health`.
void aggregate_metrics(metrics_snapshot& snapshot, const consumer_pool& consumers,
                       const trigger_registry& triggers, const producer_pool& producers,
                       const health_thresholds& health, bool started, bool stopped);

}  // namespace kt::detail
