// What other threads see of one shared consumer: counters, librdkafka's statistics, recovery and
// the partition view. The poll thread writes; any thread reads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <kt/metrics.hpp>

#include "consumer_statistics.hpp"

namespace kt::detail {

/// A consumer's metrics (`triggers` left at 0) and its partitions as each trigger (by id) sees
/// them.
struct consumer_view {
    consumer_metrics consumer;
    std::vector<std::pair<std::uint32_t, partition_metrics>> partitions;
    std::map<std::string, std::size_t> topic_partitions;  ///< from statistics
};

class consumer_probe {
  public:
    using steady = std::chrono::steady_clock;

    explicit consumer_probe(std::string group) : group_(std::move(group)) { turned(steady::now()); }

    // ---- poll thread ---------------------------------------------------------------------
    /// A new client: its name, and no statistics yet.
    void client_opened(std::string name);
    void statistics(consumer_statistics parsed);
    void rebalanced(std::chrono::nanoseconds took);
    void assigned(std::size_t partitions) noexcept {
        assigned_.store(partitions, std::memory_order_relaxed);
    }
    void recreated() noexcept { recreations_.fetch_add(1, std::memory_order_relaxed); }
    void committed() noexcept { commits_.fetch_add(1, std::memory_order_relaxed); }
    void map_budget(std::size_t bytes) noexcept {
        map_budget_.store(bytes, std::memory_order_relaxed);
    }
    std::size_t map_budget() const noexcept { return map_budget_.load(std::memory_order_relaxed); }
    /// Unhealthy for `reason` until recovered().
    void recovering(std::string reason);
    /// The reason shown while recovering, without changing whether it is.
    void recovery_reason(std::string reason);
    void recovered() noexcept { recovering_.store(false, std::memory_order_relaxed); }
    /// Replaces the partition view (what metrics() shows of partitions and topics).
    void publish(std::vector<std::pair<std::uint32_t, partition_metrics>> partitions,
                 std::vector<std::string> topics);
    /// The poll thread finished a turn at `now`.
    void turned(steady::time_point now) noexcept {
        last_turn_ns_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    }
    /// The poll thread enters a step bounded by `until` (a rebalance callback): silence before
    /// then is no stall.
    void blocking_until(steady::time_point until) noexcept {
        blocked_until_ns_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
    }
    /// The longest delivery stall now (see consumer_metrics::delivery_stalled_seconds).
    void delivery_stalled(std::chrono::nanoseconds longest, std::string partition);

    // ---- any thread ----------------------------------------------------------------------
    /// Counters for trigger_host::consumer_stats (`triggers` left at 0).
    consumer_stats stats() const;
    consumer_view view(steady::time_point now = steady::now()) const;

  private:
    const std::string group_;
    std::atomic<std::uint64_t> rebalances_{0}, recreations_{0}, commits_{0};
    std::atomic<std::uint64_t> rebalance_ns_total_{0}, last_rebalance_ns_{0};
    std::atomic<std::size_t> assigned_{0}, map_budget_{0};
    std::atomic<bool> recovering_{false};
    std::atomic<steady::rep> last_turn_ns_{0}, blocked_until_ns_{0};
    mutable std::mutex mutex_;  // guards the fields below
    std::optional<consumer_statistics> statistics_;
    statistics_rates rates_;
    std::vector<std::pair<std::uint32_t, partition_metrics>> partitions_;
    std::vector<std::string> topics_;
    std::string client_name_;
    std::string recovery_reason_;
    std::chrono::nanoseconds delivery_stalled_{0};
    std::string stalled_partition_;
};

}  // namespace kt::detail
