// Health and scaling rules (DESIGN: consumers ≤ partitions; thresholds from host_options).
#include "monitoring.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace kt::detail {

scaling_advice advise_scaling(const group_load& load, const health_thresholds& thresholds) {
    scaling_advice advice{.group = load.group,
                          .partitions = load.partitions,
                          .lag = load.lag,
                          .consume_rate = load.consume_rate,
                          .lag_rate = load.lag_rate};
    if (load.assigned == 0) {
        advice.members = advice.recommended_members = 0;
        advice.reason =
            "no partition held here: the group is rebalancing, or has at least as "
            "many members as partitions";
        return advice;
    }
    const auto partitions = std::max(load.partitions, load.assigned);
    advice.members = (partitions + load.assigned - 1) / load.assigned;
    advice.recommended_members = advice.members;
    if (load.lag <= thresholds.scale_up_lag || load.lag_rate <= 0) {
        advice.reason = fmt::format("lag {} is at most {} or not growing: keep {}", load.lag,
                                    thresholds.scale_up_lag, advice.members);
        return advice;
    }
    // Each member consumes consume_rate; absorbing the growth too needs (rate + growth) / rate.
    const double factor = (load.consume_rate + load.lag_rate) / std::max(load.consume_rate, 1.0);
    const auto wanted =
        static_cast<std::size_t>(std::ceil(static_cast<double>(advice.members) * factor));
    advice.recommended_members = std::clamp(wanted, advice.members + 1, partitions);
    advice.reason =
        advice.members >= partitions
            ? fmt::format(
                  "lag {} growing {:.0f}/s, but members already equal the {} partitions: "
                  "more would idle; speed up the handlers or add partitions",
                  load.lag, load.lag_rate, partitions)
            : fmt::format("lag {} > {} growing {:.0f}/s at {:.0f}/s consumed: {} members → {}",
                          load.lag, thresholds.scale_up_lag, load.lag_rate, load.consume_rate,
                          advice.members, advice.recommended_members);
    return advice;
}

namespace {

double seconds(std::chrono::milliseconds ms) {
    return std::chrono::duration<double>(ms).count();
}

}  // namespace

health_report assess_health(const metrics_snapshot& snapshot, const health_thresholds& thresholds,
                            bool started, bool stopped) {
    health_report report{.ready = started && !stopped};
    if (!started) report.reasons.push_back("not started");
    if (stopped) report.reasons.push_back("stopping or stopped");
    for (const auto& c : snapshot.consumers) {
        if (c.recovering)
            report.reasons.push_back(fmt::format("consumer {} of group '{}' is recovering: {}",
                                                 c.client, c.group, c.recovery_reason));
        if (c.poll_stalled_seconds > seconds(thresholds.poll_stall_after))
            report.reasons.push_back(fmt::format(
                "consumer {} of group '{}': its poll thread has not turned for {:.1f} s "
                "(threshold {:.1f} s)",
                c.client, c.group, c.poll_stalled_seconds, seconds(thresholds.poll_stall_after)));
        if (c.delivery_stalled_seconds > seconds(thresholds.stuck_after))
            report.reasons.push_back(fmt::format(
                "consumer {} of group '{}': {} has messages waiting but delivered none for "
                "{:.0f} s (threshold {:.0f} s)",
                c.client, c.group, c.stalled_partition, c.delivery_stalled_seconds,
                seconds(thresholds.stuck_after)));
        if (c.consumer_lag > thresholds.max_lag)
            report.reasons.push_back(
                fmt::format("consumer {} of group '{}' lags {} messages "
                            "(threshold {})",
                            c.client, c.group, c.consumer_lag, thresholds.max_lag));
    }
    const double stuck_after = seconds(thresholds.stuck_after);
    for (const auto& t : snapshot.triggers)
        if (t.oldest_in_flight_seconds > stuck_after)
            report.reasons.push_back(
                fmt::format("trigger '{}': a handler has run for {:.0f} s "
                            "(threshold {:.0f} s)",
                            t.name, t.oldest_in_flight_seconds, stuck_after));
    report.healthy = report.ready && report.reasons.empty();
    return report;
}

}  // namespace kt::detail
