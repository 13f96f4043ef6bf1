// librdkafka's statistics JSON (statistics.interval.ms) reduced to what metrics and recovery use.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kt/metrics.hpp>

namespace kt::detail {

struct consumer_statistics {
    std::int64_t timestamp_us = 0;  ///< librdkafka's "ts" (monotonic microseconds)
    std::int64_t consumer_lag = 0;  ///< summed over partitions that report one
    std::uint64_t rxmsgs = 0;
    std::int64_t fetchq_cnt = 0;
    std::string join_state;               ///< cgrp.join_state; empty without a group
    std::vector<broker_metrics> brokers;  ///< configured and learned brokers (not internal/logical)
    std::size_t broker_threads = 0;       ///< one per broker entry, internal and logical included
    bool any_broker_up = false;
    std::map<std::string, std::size_t> topic_partitions;  ///< partitions per known topic
};

/// Parses one statistics report; nullopt (never a throw) when it is not valid JSON.
std::optional<consumer_statistics> parse_statistics(std::string_view json);

/// Rates between two reports of the same client (per second; 0 when the interval is empty).
struct statistics_rates {
    double consume_rate = 0;
    double lag_rate = 0;
};
statistics_rates rates_between(const consumer_statistics& before, const consumer_statistics& after);

}  // namespace kt::detail
