// One librdkafka consumer shared by triggers with equal sharing keys: the façade other threads
// call, and the poll thread that sequences its parts (consumer/).
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <kt/config.hpp>
#include <kt/metrics.hpp>
#include <kt/options.hpp>
#include <kt/runtime.hpp>

#include "consumer/command_inbox.hpp"
#include "consumer/commit_ledger.hpp"
#include "consumer/committer.hpp"
#include "consumer/consume_errors.hpp"
#include "consumer/consumer_probe.hpp"
#include "consumer/done_handler.hpp"
#include "consumer/hold_until_committed.hpp"
#include "consumer/kafka_client.hpp"
#include "consumer/lifecycle.hpp"
#include "consumer/message_records.hpp"
#include "consumer/outage_watch.hpp"
#include "consumer/rebalance.hpp"
#include "consumer/router.hpp"
#include "consumer/topic_subscription.hpp"
#include "consumer/trigger_fences.hpp"
#include "consumer/wakeup.hpp"
#include "rdkafka_handles.hpp"
#include "shard/shard_link.hpp"

namespace kt::detail {

class trigger_state;

/// The consumer's parts and the poll thread that sequences them. Public members may be called
/// from any thread: they enqueue a command for the poll thread (the only thread that uses the
/// parts); an async_ operation completes on its handler's associated executor.
class shared_consumer final : public std::enable_shared_from_this<shared_consumer>,
                              private client_events,
                              private shard_pump {
  public:
    /// Validates the config (throws kt::config_error); connects nothing until start().
    shared_consumer(sharing_key key, const consumer_config& config, runtime& rt,
                    const host_options& options, delivery_guarantee delivery);
    ~shared_consumer();
    shared_consumer(const shared_consumer&) = delete;
    shared_consumer& operator=(const shared_consumer&) = delete;

    /// Creates the client and starts the poll thread and the shard readers. Idempotent; throws
    /// kt::config_error when librdkafka refuses the client (the consumer then stays created).
    void start();
    /// Routes the trigger's topic to it from now on (subscribes to the topic if new).
    void attach(std::shared_ptr<trigger_state> trigger) { start_attach(std::move(trigger)); }
    /// Stops routing to the trigger, drains its runners, commits and forgets its offsets.
    template <typename Token>
    auto async_detach(std::shared_ptr<trigger_state> trigger, Token&& token) {
        return boost::asio::async_initiate<Token, done_signature>(
            [this](done_handler done, std::shared_ptr<trigger_state> t) {
                start_detach(std::move(t), std::move(done));
            },
            token, std::move(trigger));
    }
    /// Commits every finished offset; completes once the broker answered.
    template <typename Token>
    auto async_commit(Token&& token) {
        return boost::asio::async_initiate<Token, done_signature>(
            [this](done_handler done) { start_commit(std::move(done)); }, token);
    }
    /// Graceful stop (pause, drain up to drain_timeout, cancel the rest, commit, close);
    /// completes once closed. Safe to call when never started.
    template <typename Token>
    auto async_stop(Token&& token) {
        return boost::asio::async_initiate<Token, done_signature>(
            [this](done_handler done) { start_stop(std::move(done)); }, token);
    }

    shard_link& link(unsigned shard) { return *links_[shard]; }
    const sharing_key& key() const noexcept { return key_; }
    const std::string& group() const noexcept { return group_; }
    /// For transactions (send_offsets_to_transaction); the caller destroys it; nullptr while
    /// there is no client (closed, or being recreated). Any thread.
    rd_kafka_consumer_group_metadata_t* group_metadata() const { return client_.group_metadata(); }
    /// Bytes a completion map may take in a commit (0: maps are off). Any thread.
    std::size_t completion_map_budget() const noexcept { return probe_.map_budget(); }
    /// Broker-acknowledged commits (thread-safe copy).
    committed_offsets committed() const;
    /// Counters for trigger_host::consumer_stats (thread-safe; `triggers` left at 0).
    consumer_stats stats() const;
    /// This consumer's metrics and its partitions as each trigger sees them; partition figures
    /// are refreshed by the poll thread every ~500 ms. Thread-safe.
    consumer_view metrics() const;

  private:
    // Commands: any thread → poll thread (the control plane, never messages).
    struct attach_command {
        std::shared_ptr<trigger_state> trigger;
    };
    struct detach_command {
        std::shared_ptr<trigger_state> trigger;
        done_handler done;
    };
    struct commit_command {
        done_handler done;
    };
    struct stop_command {
        done_handler done;
    };
    using command = std::variant<attach_command, detach_command, commit_command, stop_command>;
    void start_attach(std::shared_ptr<trigger_state> trigger);
    void start_detach(std::shared_ptr<trigger_state> trigger, done_handler done);
    void start_commit(done_handler done);
    void start_stop(done_handler done);
    /// Queues `c` for the poll thread, or rejects it (completes its waiter) once closed.
    void post(command c);
    static void reject(command c);
    void run(attach_command& c);
    void run(detach_command& c);
    void run(commit_command& c);
    void run(stop_command& c);

    /// The poll thread's body: turn() until closed.
    void run();
    /// One turn of the poll loop (its order is explained where it is written).
    bool turn();
    void run_commands();
    std::size_t poll_messages();
    void route(rd_kafka_message_t* raw);
    /// A message (not an error) of `id`, whose state is `state` (null: not assigned any more).
    void route(rd_kafka_message_t* raw, const partition_id& id, partition_state* state);
    void send_hold_commit();
    void resubscribe();
    void drain_completions();
    bool commit_due(std::chrono::steady_clock::time_point now) const;
    void on_completion(const completion& c);
    void finish_detach(std::uint32_t removed);
    void cancel_runners();
    void finish_stop();

    // client_events (poll thread; wake() from any thread)
    void on_rebalance(rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t* partitions) override;
    void on_statistics(std::string_view json) override;
    void on_commit(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets,
                   void* opaque) override;
    void wake() noexcept override { wakeup_->wake(); }
    // shard_pump: completions in, queued items out, shards woken.
    void pump_shards() override;

    /// Replaces a client that hit a fatal error or a long outage: its partitions are lost
    /// (handlers cancelled, nothing committed), a new client with the same config subscribes to
    /// the same topics.
    void recreate(const std::string& reason);
    /// Recreates the client when outage_ says so.
    void check_outage();
    /// No broker reachable (a consume error, statistics): starts an outage if none is under way.
    void brokers_down();
    /// A broker answered (statistics, a commit, a rebalance): no outage.
    void broker_reached();
    /// The completion map budget from the broker's offset.metadata.max.bytes, once it answers.
    void learn_map_budget();
    /// Refreshes the probe's partition view for metrics().
    void publish_partitions();
    /// Waits (bounded) until no message of the current client is referenced any more; false if
    /// some still are after the deadline.
    bool release_messages();
    /// Ends the client (`leave_group`: after close()); leaks it if its messages are still
    /// referenced.
    void end_client(bool released, bool leave_group);

    const sharing_key key_;
    const delivery_guarantee delivery_;
    runtime& rt_;
    const host_options options_;
    const std::string group_;
    consumer_lifecycle life_;
    /// A stop is under way (draining or past it).
    bool stopping() const noexcept { return life_.reached(consumer_phase::draining); }
    std::vector<std::shared_ptr<shard_link>> links_;
    /// The records of the messages handed out, and how many are out. On the heap: if some outlive
    /// the consumer, they (and the client) are leaked, never freed under them.
    std::unique_ptr<message_records> records_ = std::make_unique<message_records>();

    command_inbox<command> inbox_;
    std::mutex start_mutex_;
    std::thread thread_;
    std::shared_ptr<wakeup> wakeup_ = std::make_shared<wakeup>();  // listeners may outlive us

    // Poll-thread state: the parts the loop sequences.
    kafka_client client_;
    router routes_;
    commit_ledger ledger_;
    basic_hold_until_committed<message_ptr> hold_;  // at most once
    consumer_probe probe_;
    committer commits_;
    rebalance rebalance_;
    outage_watch outage_;

    topic_subscription subscription_;
    trigger_fences fences_;
    consume_errors errors_;
    std::chrono::steady_clock::time_point stop_deadline_;
    std::vector<done_handler> stop_waiters_;
    std::chrono::steady_clock::time_point next_commit_;
    std::size_t completed_since_commit_ = 0;
    std::chrono::steady_clock::time_point next_partition_view_;
    std::chrono::steady_clock::time_point fetched_at_;  // this turn's fetch
};

}  // namespace kt::detail
