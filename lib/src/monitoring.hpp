// Health and scaling advice derived from a metrics snapshot (pure functions, unit-tested).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <kt/metrics.hpp>

namespace kt::detail {

/// What this process knows about one consumer group's load.
struct group_load {
    std::string group;
    std::size_t partitions = 0;  ///< of the group's topics
    std::size_t assigned = 0;    ///< held by this process
    std::int64_t lag = 0;        ///< of the partitions held here
    double consume_rate = 0;
    double lag_rate = 0;
    std::map<std::string, std::size_t> topic_partitions;  ///< what `partitions` sums
};

/// Recommended members: more while the lag is above scale_up_lag and growing (enough to absorb
/// the growth at the current per-member rate), never more than partitions; otherwise as now.
scaling_advice advise_scaling(const group_load& load, const health_thresholds& thresholds);

/// Ready when started and not stopped; healthy when ready and no consumer recovers, no handler
/// runs longer than stuck_after and no consumer lags more than max_lag.
health_report assess_health(const metrics_snapshot& snapshot, const health_thresholds& thresholds,
                            bool started, bool stopped);

}  // namespace kt::detail
