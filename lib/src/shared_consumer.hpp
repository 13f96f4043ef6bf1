// One librdkafka consumer shared by triggers with equal sharing keys, and its poll thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <kt/trigger_host.hpp>

#include "consumer_statistics.hpp"
#include "offset_tracker.hpp"
#include "rdkafka_handles.hpp"
#include "shard_link.hpp"

namespace kt::detail {

class trigger_state;

/// Owns the rd_kafka_t, its poll thread, the offset trackers and commits. Public members may be
/// called from any thread: they enqueue a command for the poll thread (the only thread that calls
/// into rd_kafka_t), whose result comes back through a callback invoked on the poll thread.
class shared_consumer : public std::enable_shared_from_this<shared_consumer> {
  public:
    using done_callback = std::function<void(std::exception_ptr)>;

    /// Validates the config (throws kt::config_error); connects nothing until start().
    shared_consumer(sharing_key key, const consumer_config& config, runtime& rt,
                    const host_options& options, delivery_guarantee delivery);
    ~shared_consumer();
    shared_consumer(const shared_consumer&) = delete;
    shared_consumer& operator=(const shared_consumer&) = delete;

    /// Creates the client and starts the poll thread and the shard readers. Idempotent.
    void start();
    /// Routes the trigger's topic to it from now on (subscribes to the topic if new).
    void attach(std::shared_ptr<trigger_state> trigger);
    /// Stops routing to the trigger, drains its runners, forgets its offsets, then calls `done`.
    void detach(std::shared_ptr<trigger_state> trigger, done_callback done);
    /// Commits every finished offset; `done` once the broker answered.
    void commit(done_callback done);
    /// Graceful stop (pause, drain up to drain_timeout, cancel the rest, commit, close); `done`
    /// once closed. Safe to call when never started.
    void stop(done_callback done);

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
    /// This consumer's metrics (`triggers` left at 0) and its partitions as each trigger (by id)
    /// sees them; partition figures are refreshed by the poll thread every ~500 ms. Thread-safe.
    struct metrics_view {
        consumer_metrics consumer;
        std::vector<std::pair<std::uint32_t, partition_metrics>> partitions;
        std::map<std::string, std::size_t> topic_partitions;  ///< from statistics
    };
    metrics_view metrics() const;

  private:
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
        std::uint32_t generation = 0;
        unsigned shard = 0;
        bool paused = false;  // local: its queue is not drained
        std::unique_ptr<partition_queue> queue;
        std::vector<offset_tracker> trackers;  // aligned with routes_[topic]
        std::int64_t commit_sent = -1;
        // at_most_once: fetched messages wait here until a commit past them is acknowledged.
        std::deque<message_ptr> gated;
        std::int64_t gate_position = -1;      // offset after the last gated message
        std::int64_t released_position = -1;  // offset after the last message handed out
    };
    using partition_id = std::pair<std::uint32_t, std::int32_t>;  // (topic id, partition)

    struct command {
        std::function<void()> run;     // on the poll thread
        std::function<void()> reject;  // instead of run, when the consumer is already closed
    };
    void post_command(std::function<void()> run, std::function<void()> reject = {});
    /// Remembers the offsets of `list` as sent (or forgets them, after a refused commit).
    /// The commit before closing: true once it succeeded or cannot any more; false while a
    /// rebalance refuses it and the stop deadline allows another try.
    bool final_commit_settled();
    void mark_sent(const rd_kafka_topic_partition_list_t* list, bool sent = true);
    void run();
    void run_commands();
    void route(rd_kafka_message_t* raw);
    void dispatch(rd_kafka_message_t* raw, std::uint32_t topic, const partition_id& id,
                  partition_state& state);
    void send_gate_commit();
    void on_gate_committed(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets);
    void handle_consume_error(const rd_kafka_message_t* raw);
    void drain_completions();
    void on_completion(const completion& c);
    void flush_pending();
    void notify_shards();
    void maybe_resume(const partition_id& id, partition_state& state);
    std::uint32_t topic_id(const std::string& topic);
    void resubscribe();
    std::optional<std::int64_t> committable(const partition_state& state) const;
    partition_list_ptr committable_offsets(const std::vector<partition_id>* only, bool all) const;
    void commit_async(done_callback done);
    rd_kafka_resp_err_t commit_sync(const std::vector<partition_id>* only);
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
    void push_to_shard(unsigned shard, const shard_item& item);
    bool drained(const std::vector<partition_id>* only) const;
    void cancel_runners();
    void finish_stop();
    void set_paused(const partition_id& id, bool paused);
    /// Creates the client from conf_template_ and its queues (start and recreate).
    void open_client();
    /// Replaces a client that hit a fatal error or a long outage: its partitions are lost
    /// (handlers cancelled, nothing committed), a new client with the same config subscribes to
    /// the same topics.
    void recreate(const std::string& reason);
    /// Recreates the client once no broker was reachable for outage_recreate_after (doubling
    /// while the outage lasts, up to 16×).
    void check_outage();
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
    void wait_for_work(std::chrono::milliseconds timeout);
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
    std::string group_;
    conf_ptr conf_template_;  // every client (the first and recreated ones) is made from a copy
    std::vector<std::shared_ptr<shard_link>> links_;
    /// Messages handed out and not yet destroyed. On the heap: if some outlive the consumer, the
    /// counter (and the client) are leaked, never freed under them.
    std::unique_ptr<std::atomic<std::int64_t>> live_messages_ =
        std::make_unique<std::atomic<std::int64_t>>(0);

    // Command queue: any thread → poll thread (control plane, not the message path).
    std::mutex commands_mutex_;
    std::vector<command> commands_;
    std::atomic<bool> has_commands_{false};
    bool closed_ = false;  // guarded by commands_mutex_
    std::thread thread_;
    std::atomic<bool> started_{false};
    std::mutex wake_mutex_;
    std::condition_variable wake_cv_;
    bool wake_pending_ = false;  // guarded by wake_mutex_

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
    std::uint32_t next_generation_ = 0;
    std::vector<std::string> subscribed_;
    std::vector<bool> shard_dirty_;
    std::vector<std::shared_ptr<trigger_state>> fencing_;
    std::map<std::uint32_t, std::pair<unsigned, done_callback>>
        fences_;  // trigger id → (left, done)
    void finish_detach(std::uint32_t trigger_id);
    bool awaiting_rebalance_ = false;  // our subscription change has not rebalanced yet
    std::chrono::steady_clock::time_point awaiting_rebalance_until_;
    bool subscription_dirty_ = false;
    /// Completed positions of partitions lost without a commit: (offset, valid until).
    std::map<partition_id, std::pair<std::int64_t, std::chrono::steady_clock::time_point>>
        lost_positions_;
    int paused_count_ = 0;
    std::vector<std::string> warned_missing_;
    bool stopping_ = false;
    bool stopped_ = false;
    bool cancelled_ = false;
    std::chrono::steady_clock::time_point final_commit_retry_at_;
    std::chrono::steady_clock::time_point stop_deadline_;
    std::vector<done_callback> stop_waiters_;
    std::chrono::steady_clock::time_point next_commit_;
    std::map<partition_id, unsigned> revokes_pending_;  // revoke_done reports still expected
    std::set<done_callback*> commit_waiters_;           // explicit commits awaiting their answer
    std::int64_t last_revoke_ms_ = -1;                  // revoke callback → acknowledge
    rd_kafka_resp_err_t last_revoke_commit_ = RD_KAFKA_RESP_ERR_NO_ERROR;
    bool gate_dirty_ = false;      // gated messages wait for a gate commit
    bool gate_in_flight_ = false;  // a gate commit awaits its acknowledgement
    std::chrono::steady_clock::time_point gate_retry_at_;
    char gate_marker_ = 0;  // its address tags gate commits in commit_trampoline

    std::atomic<std::uint64_t> rebalances_{0}, recreations_{0};
    std::atomic<std::size_t> assigned_count_{0};

    std::optional<std::chrono::steady_clock::time_point> all_down_since_;  // poll thread
    unsigned outage_recreations_in_row_ = 0;
    std::chrono::steady_clock::time_point next_partition_view_;
    std::atomic<std::uint64_t> rebalance_ns_total_{0}, last_rebalance_ns_{0};
    std::atomic<bool> recovering_{false};
    mutable std::mutex metrics_mutex_;  // guards the fields below (poll thread writes)
    std::optional<consumer_statistics> statistics_;
    statistics_rates statistics_rates_;
    std::vector<std::pair<std::uint32_t, partition_metrics>> partition_view_;
    std::vector<std::string> topics_view_;
    std::string client_name_;
    std::string recovery_reason_;

    mutable std::mutex committed_mutex_;
    committed_offsets committed_;
};

}  // namespace kt::detail
