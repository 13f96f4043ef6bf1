// Everything about one trigger (options, code, its runners, producers); built on the host's
// thread, then read from any thread and changed only through its runners and atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/container/small_vector.hpp>

#include <kt/trigger_host.hpp>

namespace kt::detail {

class shared_consumer;
class trigger_runner;

/// Pull-style delivery point of a subscription; used only on its executor.
class subscription_inbox {
  public:
    using channel_type =
        boost::asio::experimental::channel<void(boost::system::error_code, message)>;

    subscription_inbox(boost::asio::any_io_executor ex, std::size_t capacity, runtime& shards)
        : executor(ex), channel(ex, capacity), rt(&shards) {}

    boost::asio::any_io_executor executor;
    std::string name;
    channel_type channel;
    runtime* rt;
    std::weak_ptr<class trigger_state> trigger;
};

/// What a trigger runs: exactly one of the callables is set (none for a pull subscription).
struct trigger_code {
    handler plain;
    transform_handler transform;
    batch_handler batch;
    batch_options batching;
};

/// Messages run together: one, or a batch of one partition.
using work_items = boost::container::small_vector<message, 1>;

/// Everything about one trigger. Immutable after construction except through its runners (each
/// touched only on its shard) and atomics.
class topic_pattern;

class trigger_state : public std::enable_shared_from_this<trigger_state> {
  public:
    trigger_state(std::uint32_t trigger_id, trigger_options opts, trigger_code trigger_code,
                  std::shared_ptr<subscription_inbox> pull_inbox);
    ~trigger_state();

    /// Creates one runner per shard, bound to the consumer's links.
    void bind(runtime& rt, std::shared_ptr<shared_consumer> owner);
    trigger_stats stats() const;
    /// Counters, handler durations and the oldest running handler, summed over shards.
    trigger_metrics metrics() const;
    bool is_batch() const noexcept { return static_cast<bool>(code.batch); }

    const std::uint32_t id;
    const trigger_options options;
    const trigger_code code;
    const std::shared_ptr<subscription_inbox> inbox;  // null for handler triggers
    /// A trigger on a topic pattern: its compiled pattern (null for a named topic, or one that
    /// does not compile, which add_trigger refuses).
    const std::shared_ptr<const topic_pattern> pattern;
    /// The topics of its retry tiers, tier 1 first (empty: retry topics off).
    const std::vector<std::string> retry_topics;
    /// The tier (1-based) whose topic `topic` is; 0: the trigger's own topic.
    unsigned retry_tier_of(std::string_view topic) const noexcept {
        for (std::size_t i = 0; i < retry_topics.size(); ++i)
            if (retry_topics[i] == topic) return static_cast<unsigned>(i + 1);
        return 0;
    }
    std::string dead_letter_topic;  // empty: dead letters off
    /// The writer of dead letters and retry tier records, opened on first use (most triggers
    /// never need one, and a producer costs threads). Any shard; the first call may block briefly.
    std::shared_ptr<kt::producer> dead_letters();
    // Set when dead letters or retry topics are on.
    std::function<std::shared_ptr<kt::producer>()> open_dead_letters;
    /// After removal: lets go of the producers so the pool can close them.
    void release_producers() {
        std::lock_guard lock(dead_letters_mutex_);
        dead_letters_.reset();
        output.reset();
    }
    std::shared_ptr<kt::producer> output;          // transform triggers (not exactly_once)
    std::shared_ptr<const tracing_hooks> tracing;  // the host's hooks; null when unset
    std::shared_ptr<shared_consumer> consumer;
    std::vector<std::unique_ptr<trigger_runner>> runners;  // runners[i] lives on shard i
    /// pause_trigger(): runners start no new work while set.
    std::atomic<bool> paused{false};
    std::atomic<bool> key_of_failure_logged{false};

  private:
    std::mutex dead_letters_mutex_;
    std::shared_ptr<kt::producer> dead_letters_;
};

}  // namespace kt::detail
