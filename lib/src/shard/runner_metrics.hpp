// One runner's counters, handler durations and oldest running work: written only on its shard,
// read from any thread (relaxed) when the host sums a trigger's stats and metrics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include <kt/metrics.hpp>

namespace kt::detail {

/// Adds to a counter that only one shard writes: a plain load and store, no atomic
/// read-modify-write (readers on other threads see it relaxed).
inline void add_local(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

inline std::int64_t steady_ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

class runner_metrics {
  public:
    // Written only on this shard, read anywhere (relaxed).
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> retried{0};
    std::atomic<std::uint64_t> dead_lettered{0};
    std::atomic<std::uint64_t> in_flight{0};

    // ---- shard thread ----
    /// Work started at `at`: its sequence number, for ended().
    std::uint64_t started(std::chrono::steady_clock::time_point at);
    /// The work numbered `seq`, started at `at`, ended `now`: its duration counts, and the
    /// oldest running work is published again when it was that one.
    void ended(std::uint64_t seq, std::chrono::steady_clock::time_point at,
               std::chrono::steady_clock::time_point now);
    /// The stop deadline passed: nothing counts as running any more.
    void clear_running();

    // ---- any thread ----
    /// Adds the counters to `into`.
    void add_to(trigger_stats& into) const;
    /// Adds the handler durations to `into`; lowers `oldest` (steady_clock nanoseconds, 0: none)
    /// to when this runner's oldest running work started.
    void add_durations(duration_histogram& into, std::int64_t& oldest) const;

  private:
    void publish_oldest();

    /// duration_histogram::bounds in nanoseconds: no floating point per message.
    static constexpr auto bound_ns = [] {
        std::array<std::int64_t, duration_histogram::bounds.size()> ns{};
        for (std::size_t i = 0; i < ns.size(); ++i)
            ns[i] = static_cast<std::int64_t>(duration_histogram::bounds[i] * 1e9 + 0.5);
        return ns;
    }();

    std::array<std::atomic<std::uint64_t>, duration_histogram::bounds.size() + 1> durations_{};
    std::atomic<std::uint64_t> duration_sum_ns_{0};
    /// steady_clock nanoseconds when the oldest running work started; 0 when none runs.
    std::atomic<std::int64_t> oldest_running_since_ns_{0};
    std::uint64_t next_run_seq_ = 0;
    /// (run_seq, start) of running work in start order; bounded by max_in_flight.
    std::vector<std::pair<std::uint64_t, std::chrono::steady_clock::time_point>> running_since_;
};

}  // namespace kt::detail
