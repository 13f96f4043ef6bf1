// The consumer's rd_kafka_t and its queues: the only code that calls librdkafka's consumer API.
// Poll thread, except group_metadata() (any thread) and the queue-event wake-ups librdkafka's own
// threads deliver to the event sink.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rdkafka_handles.hpp"

namespace kt::detail {

/// What the client reports. On the poll thread (inside its poll calls), except wake(), which
/// librdkafka's threads call when one of the client's queues gets an event.
class client_events {
  public:
    virtual void on_rebalance(rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t* partitions) = 0;
    virtual void on_statistics(std::string_view json) = 0;
    /// The answer to commit_async(); `opaque` is the one it was sent with.
    virtual void on_commit(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets,
                           void* opaque) = 0;
    virtual void wake() noexcept = 0;

  protected:
    ~client_events() = default;
};

/// A partition's own librdkafka queue (not forwarded to the consumer queue), so a backed-up
/// partition is held back by not draining it: no pause/refetch round trip, instant resume.
class partition_queue {
  public:
    partition_queue(rd_kafka_queue_t* queue, client_events& events);
    ~partition_queue();
    partition_queue(const partition_queue&) = delete;
    partition_queue& operator=(const partition_queue&) = delete;
    /// The messages waiting, up to into.size(), without blocking; returns how many.
    std::size_t consume(std::span<rd_kafka_message_t*> into);

  private:
    rd_kafka_queue_t* queue_;
};

/// How a client ends.
enum class client_end : std::uint8_t {
    destroy,        ///< after close(): rd_kafka_destroy
    abandon_group,  ///< a fenced or failed member: destroyed without the consumer close, on a
                    ///< thread of its own
    leak,           ///< messages of it are still referenced: never freed under them
};

class kafka_client {
  public:
    /// Every client (the first and the recreated ones) is made from a copy of `conf`.
    kafka_client(std::string group, conf_ptr conf, client_events& events);
    ~kafka_client();
    kafka_client(const kafka_client&) = delete;
    kafka_client& operator=(const kafka_client&) = delete;

    /// Creates the rd_kafka_t and its consumer and commit queues.
    void open();
    /// Detaches and destroys the queues, then ends the client as `how` says.
    void end(client_end how);
    /// librdkafka's name of the client ("rdkafka#consumer-3").
    std::string name() const;
    /// The reason of a fatal error, if the client hit one.
    std::optional<std::string> fatal_error() const;
    /// For transactions (send_offsets_to_transaction); the caller destroys it; nullptr while
    /// there is no client. Any thread.
    rd_kafka_consumer_group_metadata_t* group_metadata() const;

    /// The next message or event of the consumer queue (rebalances, errors), or nullptr.
    rd_kafka_message_t* poll();
    /// The partition's own queue; nullptr if librdkafka has none for it.
    std::unique_ptr<partition_queue> take_partition_queue(const char* topic,
                                                          std::int32_t partition);

    /// Subscribes to `topics` (sorted); none unsubscribes.
    rd_kafka_resp_err_t subscribe(const std::vector<std::string>& topics);
    /// Adds (cooperative) or sets (eager) the assignment, from the rebalance callback.
    void assign(const rd_kafka_topic_partition_list_t* partitions);
    /// Removes `partitions` (cooperative) or the whole assignment (eager).
    void unassign(const rd_kafka_topic_partition_list_t* partitions);
    void clear_assignment();
    /// The revocation being handled is a loss (session timed out, fenced).
    bool assignment_lost() const;
    void pause(const rd_kafka_topic_partition_list_t* partitions);
    void pause_assignment();

    /// Commits `offsets`; the answer reaches on_commit() with `opaque` from serve_commit_answers().
    rd_kafka_resp_err_t commit_async(const rd_kafka_topic_partition_list_t* offsets, void* opaque);
    /// Commits `offsets` and waits for the broker.
    rd_kafka_resp_err_t commit_sync(const rd_kafka_topic_partition_list_t* offsets);
    void serve_commit_answers();
    /// The group's committed offsets and their metadata of `partitions`, filled in place.
    rd_kafka_resp_err_t read_committed(rd_kafka_topic_partition_list_t* partitions,
                                       std::chrono::milliseconds timeout);
    /// The cached high watermark, if known.
    std::optional<std::int64_t> high_watermark(const std::string& topic,
                                               std::int32_t partition) const;
    /// Leaves the group (the last rebalance callbacks run inside).
    void close();

    /// The broker's offset.metadata.max.bytes, once per client: the first calls ask a broker
    /// (DescribeConfigs, once the client knows one), a later call returns the answer, every other
    /// call nullopt. A refusal (the embedded cluster has no DescribeConfigs) is logged at debug
    /// level and never answered.
    std::optional<std::int64_t> take_offset_metadata_limit();

  private:
    static void queue_event(rd_kafka_t* rk, void* opaque);
    static void rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* partitions, void* opaque);
    static int statistics_trampoline(rd_kafka_t* rk, char* json, std::size_t length, void* opaque);
    static void commit_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* offsets, void* opaque);
    bool cooperative() const;
    void change_assignment(const rd_kafka_topic_partition_list_t* partitions, bool add);

    const std::string group_;  // for logs
    conf_ptr conf_;
    client_events& events_;
    mutable std::mutex mutex_;  // guards replacing client_ against group_metadata()
    client_ptr client_;
    queue_ptr consumer_queue_;
    queue_ptr commit_queue_;
    queue_ptr admin_queue_;  // the DescribeConfigs answer
    enum class limit_request : std::uint8_t { unasked, asked, done } limit_request_{};
    /// Abandoned clients being destroyed off the poll thread (joined at destruction).
    struct abandoned_client {
        std::shared_ptr<std::atomic<bool>> destroyed;
        std::jthread destroying;
    };
    std::vector<abandoned_client> abandoned_;
};

}  // namespace kt::detail
