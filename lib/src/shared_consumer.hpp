// One librdkafka consumer shared by triggers with equal sharing keys, and its poll thread.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
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
#include "consumer/consumer_probe.hpp"
#include "consumer/hold_until_committed.hpp"
#include "consumer/in_flight.hpp"
#include "consumer/lifecycle.hpp"
#include "consumer/outage_watch.hpp"
#include "consumer/wakeup.hpp"
#include "rdkafka_handles.hpp"
#include "shard/shard_link.hpp"

namespace kt::detail {

class trigger_state;

/// How the consumer's operations complete: with an exception, or null.
using done_signature = void(std::exception_ptr);
using done_handler = boost::asio::any_completion_handler<done_signature>;

/// Owns the rd_kafka_t, its poll thread, the offset trackers and commits. Public members may be
/// called from any thread: they enqueue a command for the poll thread (the only thread that calls
/// into rd_kafka_t); an async_ operation completes on its handler's associated executor.
class shared_consumer : public std::enable_shared_from_this<shared_consumer> {
  public:
    /// Validates the config (throws kt::config_error); connects nothing until start().
    shared_consumer(sharing_key key, const consumer_config& config, runtime& rt,
                    const host_options& options, delivery_guarantee delivery);
    ~shared_consumer();
    shared_consumer(const shared_consumer&) = delete;
    shared_consumer& operator=(const shared_consumer&) = delete;

    /// Creates the client and starts the poll thread and the shard readers. Idempotent.
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
    rd_kafka_consumer_group_metadata_t* group_metadata() const {
        std::lock_guard lock(client_mutex_);  // the poll thread may be replacing the client
        return client_ ? rd_kafka_consumer_group_metadata(client_.get()) : nullptr;
    }
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

    /// The opaque of a commit sent with rd_kafka_commit_queue (periodic commits have none);
    /// commit_trampoline answers it on the poll thread.
    struct pending_commit {
        enum class kind : std::uint8_t { requested, hold };
        kind what;
        done_handler done;  // requested
    };
    /// A trigger being removed: shards still to confirm its fence, and who waits.
    struct fence {
        unsigned shards_left;
        done_handler done;
    };

    struct route_entry {
        std::shared_ptr<trigger_state> trigger;
        bool detaching = false;  // fenced: no new deliveries; its tracker still counts
    };
    /// The partition's own librdkafka queue (not forwarded to the consumer queue), so a backed-up
    /// partition is held back by not draining it: no pause/refetch round trip, instant resume.
    struct partition_queue {
        partition_queue(rd_kafka_queue_t* queue, shared_consumer* owner);
        ~partition_queue();
        partition_queue(const partition_queue&) = delete;
        partition_queue& operator=(const partition_queue&) = delete;
        rd_kafka_queue_t* queue;
    };
    struct partition_state {
        unsigned shard = 0;
        bool paused = false;  // local: its queue is not drained
        std::unique_ptr<partition_queue> queue;
        partition_ledger* ledger = nullptr;  // its entry in ledger_
    };

    /// The commit before closing: true once it succeeded or cannot any more; false while a
    /// rebalance refuses it and the stop deadline allows another try.
    bool final_commit_settled();
    /// The poll thread's body: turn() until closed.
    void run();
    /// One turn of the poll loop (its order is explained where it is written).
    bool turn();
    void run_commands();
    void route(rd_kafka_message_t* raw);
    void dispatch(rd_kafka_message_t* raw, std::uint32_t topic, const partition_id& id,
                  partition_state& state);
    void send_hold_commit();
    void on_hold_committed(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets);
    /// The commit list of `entries` (topic ids resolved to names).
    partition_list_ptr partition_list(const std::vector<commit_entry>& entries) const;
    /// The entries of `list` that name a known topic and carry no error.
    std::vector<commit_entry> commit_entries(const rd_kafka_topic_partition_list_t* list) const;
    void handle_consume_error(const rd_kafka_message_t* raw);
    void drain_completions();
    void on_completion(const completion& c);
    void flush_pending();
    void notify_shards();
    void maybe_resume(const partition_id& id, partition_state& state);
    std::uint32_t topic_id(const std::string& topic);
    void resubscribe();
    /// Commits every finished offset: periodic (no `done`) or requested (resends all, `done`
    /// once acknowledged).
    void send_commit(done_handler done);
    rd_kafka_resp_err_t commit_sync(const std::vector<partition_id>* only);
    /// Hands the broker's acknowledgement of `offsets` to the ledger.
    void record_committed(const rd_kafka_topic_partition_list_t* offsets);
    void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
    void assign_partitions(rd_kafka_topic_partition_list_t* partitions);
    void resume_lost_positions(rd_kafka_topic_partition_list_t* partitions);
    void revoke_partitions(const rd_kafka_topic_partition_list_t* partitions, bool lost);
    bool revokes_drained() const;
    enum class rebalance_event { assigned, revoked, lost };
    /// Runs the triggers' listeners for `event` on `ids` and waits for them (bounded).
    void notify_listeners(rebalance_event event, const std::vector<partition_id>& ids);
    void cancel_partition_handlers();
    void cancel_runners();
    void finish_stop();
    void set_paused(const partition_id& id, bool paused);
    /// Creates the client from conf_template_ and its queues (start and recreate).
    void open_client();
    /// Replaces a client that hit a fatal error or a long outage: its partitions are lost
    /// (handlers cancelled, nothing committed), a new client with the same config subscribes to
    /// the same topics.
    void recreate(const std::string& reason);
    /// Recreates the client when outage_ says so.
    void check_outage();
    /// No broker reachable (a consume error, statistics): starts an outage if none is under way.
    void brokers_down();
    void on_statistics(std::string_view json);
    /// A broker answered (statistics, a commit, a rebalance): no outage.
    void broker_reached();
    /// Refreshes partition_view_ for metrics().
    void publish_partitions();
    /// Waits (bounded) until no message of the current client is referenced any more; false if
    /// some still are after the deadline.
    bool release_messages();
    /// Detaches and destroys the consumer and commit queues (before their client goes).
    void close_queues();
    /// Fails the explicit commits still awaiting an answer the client will not give any more.
    void fail_commit_waiters(rd_kafka_resp_err_t err);

    /// Wakes the poll thread (from any thread, including librdkafka's queue-event callbacks).
    void wake() noexcept;
    static void queue_event(rd_kafka_t* rk, void* opaque);
    std::size_t poll_messages();

    static void rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* partitions, void* opaque);
    static int statistics_trampoline(rd_kafka_t* rk, char* json, std::size_t length, void* opaque);
    static void commit_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* offsets, void* opaque);

    const sharing_key key_;
    const delivery_guarantee delivery_;
    runtime& rt_;
    const host_options options_;
    consumer_lifecycle life_;
    /// A stop is under way (draining or past it).
    bool stopping() const noexcept { return life_.reached(consumer_phase::draining); }
    std::string group_;
    conf_ptr conf_template_;  // every client (the first and recreated ones) is made from a copy
    std::vector<std::shared_ptr<shard_link>> links_;
    /// Messages handed out and not yet destroyed. On the heap: if some outlive the consumer, the
    /// counter (and the client) are leaked, never freed under them.
    std::unique_ptr<in_flight> live_messages_ = std::make_unique<in_flight>();

    command_inbox<command> inbox_;
    std::thread thread_;
    wakeup wakeup_;

    // Poll-thread state.
    mutable std::mutex client_mutex_;  // guards replacing client_ against group_metadata()
    client_ptr client_;
    queue_ptr consumer_queue_;
    queue_ptr commit_queue_;
    std::vector<std::string> topics_;
    std::unordered_map<std::string, std::uint32_t> topic_ids_;
    std::unordered_map<const rd_kafka_topic_t*, std::uint32_t> topic_by_handle_;
    std::vector<std::vector<route_entry>> routes_;  // by topic id
    std::map<partition_id, partition_state> partitions_;
    commit_ledger ledger_;
    basic_hold_until_committed<message_ptr> hold_;  // at most once
    outage_watch outage_;
    consumer_probe probe_;
    std::uint32_t next_generation_ = 0;
    std::vector<std::string> subscribed_;
    std::vector<std::shared_ptr<trigger_state>> fencing_;
    std::map<std::uint32_t, fence> fences_;  // by trigger id
    void finish_detach(std::uint32_t removed);
    bool awaiting_rebalance_ = false;  // our subscription change has not rebalanced yet
    std::chrono::steady_clock::time_point awaiting_rebalance_until_;
    bool subscription_dirty_ = false;
    /// Completed positions of partitions lost without a commit: (offset, valid until).
    std::map<partition_id, std::pair<std::int64_t, std::chrono::steady_clock::time_point>>
        lost_positions_;
    int paused_count_ = 0;
    std::vector<std::string> warned_missing_;
    std::chrono::steady_clock::time_point final_commit_retry_at_;
    std::chrono::steady_clock::time_point stop_deadline_;
    std::vector<done_handler> stop_waiters_;
    std::chrono::steady_clock::time_point next_commit_;
    std::map<partition_id, unsigned> revokes_pending_;  // revoke_done reports still expected
    std::map<const pending_commit*, std::unique_ptr<pending_commit>> pending_commits_;
    std::int64_t last_revoke_ms_ = -1;  // revoke callback → acknowledge
    rd_kafka_resp_err_t last_revoke_commit_ = RD_KAFKA_RESP_ERR_NO_ERROR;

    std::chrono::steady_clock::time_point next_partition_view_;
};

}  // namespace kt::detail
