#include "consumer/consumer_probe.hpp"

#include <algorithm>

namespace kt::detail {

void consumer_probe::client_opened(std::string name) {
    std::lock_guard lock(mutex_);
    client_name_ = std::move(name);
    statistics_.reset();
    rates_ = {};
}

void consumer_probe::statistics(consumer_statistics parsed) {
    std::lock_guard lock(mutex_);
    if (statistics_) rates_ = rates_between(*statistics_, parsed);
    statistics_ = std::move(parsed);
}

void consumer_probe::rebalanced(std::chrono::nanoseconds took) {
    const auto ns = static_cast<std::uint64_t>(took.count());
    rebalances_.fetch_add(1, std::memory_order_relaxed);
    rebalance_ns_total_.fetch_add(ns, std::memory_order_relaxed);
    last_rebalance_ns_.store(ns, std::memory_order_relaxed);
}

void consumer_probe::recovering(std::string reason) {
    recovering_.store(true, std::memory_order_relaxed);
    recovery_reason(std::move(reason));
}

void consumer_probe::recovery_reason(std::string reason) {
    std::lock_guard lock(mutex_);
    recovery_reason_ = std::move(reason);
}

void consumer_probe::publish(std::vector<std::pair<std::uint32_t, partition_metrics>> partitions,
                             std::vector<std::string> topics) {
    std::lock_guard lock(mutex_);
    partitions_ = std::move(partitions);
    topics_ = std::move(topics);
}

void consumer_probe::delivery_stalled(std::chrono::nanoseconds longest, std::string partition) {
    std::lock_guard lock(mutex_);
    delivery_stalled_ = longest;
    stalled_partition_ = std::move(partition);
}

consumer_stats consumer_probe::stats() const {
    return {.group = group_,
            .assigned_partitions = assigned_.load(std::memory_order_relaxed),
            .rebalances = rebalances_.load(std::memory_order_relaxed),
            .recreations = recreations_.load(std::memory_order_relaxed)};
}

consumer_view consumer_probe::view(steady::time_point now) const {
    const auto counters = stats();
    consumer_view view;
    auto& m = view.consumer;
    m.group = group_;
    m.assigned_partitions = counters.assigned_partitions;
    m.rebalances = counters.rebalances;
    m.recreations = counters.recreations;
    m.commits = commits_.load(std::memory_order_relaxed);
    m.completion_map_budget_bytes = map_budget_.load(std::memory_order_relaxed);
    m.rebalance_seconds_total =
        static_cast<double>(rebalance_ns_total_.load(std::memory_order_relaxed)) / 1e9;
    m.last_rebalance_seconds =
        static_cast<double>(last_rebalance_ns_.load(std::memory_order_relaxed)) / 1e9;
    m.recovering = recovering_.load(std::memory_order_relaxed);
    const auto expected =
        steady::duration(std::max(last_turn_ns_.load(std::memory_order_relaxed),
                                  blocked_until_ns_.load(std::memory_order_relaxed)));
    m.poll_stalled_seconds =
        std::max(0.0, std::chrono::duration<double>(now.time_since_epoch() - expected).count());
    std::lock_guard lock(mutex_);
    m.delivery_stalled_seconds = std::chrono::duration<double>(delivery_stalled_).count();
    m.stalled_partition = stalled_partition_;
    m.client = client_name_;
    m.topics = topics_;
    if (m.recovering) m.recovery_reason = recovery_reason_;
    m.threads = 2;  // the poll thread and librdkafka's main thread, plus one per broker below
    if (statistics_) {
        m.threads += static_cast<unsigned>(statistics_->broker_threads);
        m.consumer_lag = statistics_->consumer_lag;
        m.rxmsgs = statistics_->rxmsgs;
        m.fetchq_cnt = statistics_->fetchq_cnt;
        m.group_state = statistics_->join_state;
        m.brokers = statistics_->brokers;
        m.consume_rate = rates_.consume_rate;
        m.lag_rate = rates_.lag_rate;
        view.topic_partitions = statistics_->topic_partitions;
    }
    view.partitions = partitions_;
    return view;
}

}  // namespace kt::detail
