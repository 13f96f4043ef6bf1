// A runner's handler durations and oldest running work (shard thread), summed by any thread.
#include "shard/runner_metrics.hpp"

#include <algorithm>

namespace kt::detail {

std::uint64_t runner_metrics::started(std::chrono::steady_clock::time_point at) {
    const auto seq = next_run_seq_++;
    running_since_.emplace_back(seq, at);
    if (running_since_.size() == 1) publish_oldest();
    return seq;
}

void runner_metrics::ended(std::uint64_t seq, std::chrono::steady_clock::time_point at,
                           std::chrono::steady_clock::time_point now) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - at).count();
    // Most handlers end inside the first buckets: a scan from the smallest bound beats a search.
    std::size_t bucket = 0;
    while (bucket < bound_ns.size() && ns > bound_ns[bucket]) ++bucket;
    add_local(durations_[bucket], 1);
    add_local(duration_sum_ns_, static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)));
    if (!running_since_.empty() && running_since_.front().first == seq) {  // in start order
        running_since_.erase(running_since_.begin());
        publish_oldest();
        return;
    }
    auto running = std::lower_bound(running_since_.begin(), running_since_.end(),
                                    std::pair{seq, std::chrono::steady_clock::time_point::min()});
    if (running != running_since_.end() && running->first == seq) {
        const bool was_oldest = running == running_since_.begin();
        running_since_.erase(running);
        if (was_oldest) publish_oldest();
    }
}

void runner_metrics::clear_running() {
    running_since_.clear();
    publish_oldest();
}

void runner_metrics::publish_oldest() {
    oldest_running_since_ns_.store(
        running_since_.empty() ? 0 : steady_ns(running_since_.front().second),
        std::memory_order_relaxed);
}

void runner_metrics::add_to(trigger_stats& into) const {
    into.handled += handled.load(std::memory_order_relaxed);
    into.failed += failed.load(std::memory_order_relaxed);
    into.retried += retried.load(std::memory_order_relaxed);
    into.dead_lettered += dead_lettered.load(std::memory_order_relaxed);
    into.in_flight += in_flight.load(std::memory_order_relaxed);
}

void runner_metrics::add_durations(duration_histogram& into, std::int64_t& oldest) const {
    for (std::size_t i = 0; i < into.counts.size(); ++i) {
        const auto n = durations_[i].load(std::memory_order_relaxed);
        into.counts[i] += n;
        into.count += n;
    }
    into.sum_seconds += static_cast<double>(duration_sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    const auto since = oldest_running_since_ns_.load(std::memory_order_relaxed);
    if (since != 0 && (oldest == 0 || since < oldest)) oldest = since;
}

}  // namespace kt::detail
