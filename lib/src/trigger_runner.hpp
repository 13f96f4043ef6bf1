// A trigger's per-shard runner: lanes that keep the ordering mode, max_in_flight, cancellation.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/channel.hpp>

#include <kt/trigger_host.hpp>

#include "shard_link.hpp"

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

/// Everything about one trigger. Immutable after construction except through its runners (each
/// touched only on its shard) and atomics.
class trigger_state : public std::enable_shared_from_this<trigger_state> {
  public:
    trigger_state(std::uint32_t trigger_id, trigger_options opts, handler fn,
                  std::shared_ptr<subscription_inbox> pull_inbox)
        : id(trigger_id),
          options(std::move(opts)),
          handle(std::move(fn)),
          inbox(std::move(pull_inbox)) {}

    /// Creates one runner per shard, bound to the consumer's links.
    void bind(runtime& rt, std::shared_ptr<shared_consumer> owner);
    trigger_stats stats() const;

    const std::uint32_t id;
    const trigger_options options;
    const handler handle;                             // empty for subscriptions
    const std::shared_ptr<subscription_inbox> inbox;  // null for handler triggers
    std::shared_ptr<shared_consumer> consumer;
    std::vector<std::unique_ptr<trigger_runner>> runners;  // runners[i] lives on shard i
};

/// Runs one trigger's messages on one shard. A "lane" is the unit that runs one message at a
/// time: the partition, the (partition, key), or the message itself, by ordering mode.
/// Shard-local: every member function runs on the shard's thread.
class trigger_runner {
  public:
    trigger_runner(trigger_state& owner, boost::asio::any_io_executor shard, shard_link& link);

    void deliver(message m);
    /// The handler (or the subscriber) finished `m`.
    void finish(const message& m, bool ok);
    /// Fence for removal: drop queued messages; report fence_done once nothing runs.
    void close();
    /// Stop deadline passed: cancel running handlers, drop queued ones, report nothing more.
    void cancel();

    // Written only on this shard, read anywhere (relaxed).
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> in_flight{0};

  private:
    struct lane {
        std::deque<message> pending;
        bool busy = false;
        bool ready = false;  // queued in ready_
    };

    std::uint64_t lane_of(const message& m) const;
    void enqueue_ready(std::uint64_t lane_id, lane& l);
    void pump();
    void start(std::uint64_t lane_id, message m);
    void report_fence_if_drained();

    trigger_state& owner_;
    boost::asio::any_io_executor shard_;
    shard_link& link_;
    std::unordered_map<std::uint64_t, lane> lanes_;
    std::deque<std::uint64_t> ready_;
    unsigned running_ = 0;
    bool closing_ = false;
    bool cancelled_ = false;
    bool fence_reported_ = false;
    std::uint64_t next_run_id_ = 0;
    std::unordered_map<std::uint64_t, std::unique_ptr<boost::asio::cancellation_signal>> signals_;
};

/// Shard that owns (topic, partition): fixed, so a partition's order is kept on one thread.
unsigned shard_of(std::string_view topic, std::int32_t partition, unsigned shard_count) noexcept;

}  // namespace kt::detail
