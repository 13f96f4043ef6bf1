// Retry topics: their names, the headers their records carry, and reading those headers back on
// the poll thread (when a record is due, whose it is) and on the shard (its tier).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <librdkafka/rdkafka.h>

#include <kt/options.hpp>
#include <kt/producer.hpp>

namespace kt::detail {

namespace retry_header {
inline constexpr const char* trigger = "kt-retry-trigger";  // whose retry it is
inline constexpr const char* tier = "kt-retry-tier";        // 1-based
inline constexpr const char* due = "kt-retry-due";          // ms since the epoch (system clock)
inline constexpr const char* failure = "kt-retry-failure";  // one per failed tier, oldest first
}  // namespace retry_header

/// The record that takes `m` to `tier` (1-based) of `trigger`, due `delay` from now: its key,
/// value and headers, the failure appended to its history, and (on its first retry) where it came
/// from.
record retry_record(const std::string& trigger, const std::string& tier_topic, unsigned tier,
                    std::chrono::milliseconds delay, const message& m,
                    const std::pair<std::string, std::string>& failure);

/// A fetched retry record's due time and owner, from its headers (nullopt: not a retry record
/// of ours, e.g. written by hand; it runs at once).
struct retry_stamp {
    std::chrono::system_clock::time_point due;
    std::string trigger;
};
std::optional<retry_stamp> read_retry_stamp(rd_kafka_message_t* raw);

}  // namespace kt::detail
