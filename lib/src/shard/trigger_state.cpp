// A trigger's runners (created on the host's thread) and its stats summed over them (any thread).
#include "shard/trigger_state.hpp"

#include <algorithm>

#include "consumer/shared_consumer.hpp"
#include "consumer/topic_pattern.hpp"
#include "retry_topics.hpp"
#include "shard/trigger_runner.hpp"

namespace kt::detail {

namespace {

std::shared_ptr<const topic_pattern> compiled_pattern(const std::string& topic) {
    if (!topic_pattern::is_pattern(topic)) return nullptr;
    try {
        return std::make_shared<const topic_pattern>(topic);
    } catch (const std::invalid_argument&) {
        return nullptr;
    }
}

}  // namespace

trigger_state::trigger_state(std::uint32_t trigger_id, trigger_options opts,
                             trigger_code trigger_code, std::shared_ptr<subscription_inbox> pull)
    : id(trigger_id),
      options(std::move(opts)),
      code(std::move(trigger_code)),
      inbox(std::move(pull)),
      pattern(compiled_pattern(options.topic)),
      retry_topics(retry_topic_names(options)) {}

trigger_state::~trigger_state() = default;

void trigger_state::bind(runtime& rt, std::shared_ptr<shared_consumer> owner) {
    consumer = std::move(owner);
    for (unsigned shard = 0; shard < rt.shard_count(); ++shard)
        runners.push_back(
            std::make_unique<trigger_runner>(*this, shard, rt.shard(shard), consumer->link(shard)));
    for (auto& runner : runners) runner->open_transaction_early();
}

std::shared_ptr<kt::producer> trigger_state::dead_letters() {
    std::lock_guard lock(dead_letters_mutex_);
    if (!dead_letters_) dead_letters_ = open_dead_letters();
    return dead_letters_;
}

trigger_stats trigger_state::stats() const {
    trigger_stats s{options.name, options.topic};
    for (const auto& runner : runners) runner->metrics().add_to(s);
    return s;
}

trigger_metrics trigger_state::metrics() const {
    const auto totals = stats();
    trigger_metrics m{.name = totals.name,
                      .topic = totals.topic,
                      .handled = totals.handled,
                      .failed = totals.failed,
                      .retried = totals.retried,
                      .dead_lettered = totals.dead_lettered,
                      .in_flight = totals.in_flight,
                      .paused = paused.load(std::memory_order_relaxed)};
    std::int64_t oldest = 0;
    for (const auto& runner : runners) runner->metrics().add_durations(m.handler_duration, oldest);
    if (oldest != 0)
        m.oldest_in_flight_seconds = std::max(
            0.0, static_cast<double>(steady_ns(std::chrono::steady_clock::now()) - oldest) / 1e9);
    return m;
}

}  // namespace kt::detail
