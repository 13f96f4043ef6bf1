// kt::embedded_cluster: an in-process Kafka cluster (librdkafka's mock brokers on loopback TCP).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kt {

/// Kafka protocol requests whose responses the embedded cluster can fail on purpose.
enum class kafka_api : std::int16_t {
    produce = 0,
    fetch = 1,
    list_offsets = 2,
    metadata = 3,
    offset_commit = 8,
    offset_fetch = 9,
    find_coordinator = 10,
    join_group = 11,
    heartbeat = 12,
    leave_group = 13,
    sync_group = 14,
    consumer_group_heartbeat = 68,  ///< group.protocol=consumer (KIP-848)
};

struct embedded_cluster_options {
    int brokers = 3;
    /// What the brokers tell members of group.protocol=consumer (KIP-848) groups, who no longer
    /// choose these themselves: a member silent this long leaves the group, and how often to
    /// heartbeat. The defaults are the mock brokers' own.
    std::chrono::milliseconds consumer_group_session_timeout{30000};
    std::chrono::milliseconds consumer_group_heartbeat_interval{3000};
};

/// Real Kafka protocol over loopback, for demos and tests. Limits: no persistence, ~5 MiB per
/// partition log, first group join takes ~3 s, no transaction markers (read_committed).
/// Thread-safety: all members may be called from any thread.
class embedded_cluster {
  public:
    explicit embedded_cluster(embedded_cluster_options options = {});
    embedded_cluster(const embedded_cluster&) = delete;
    embedded_cluster& operator=(const embedded_cluster&) = delete;
    ~embedded_cluster();

    /// bootstrap.servers of the cluster ("127.0.0.1:port,...").
    std::string bootstrap() const;
    /// Creates `topic` with `partitions` partitions (replication factor 1). Throws kt::kafka_error.
    void create_topic(const std::string& topic, int partitions = 6);
    // ---- fault injection ----
    /// Takes broker `broker_id` (1-based) down or brings it back.
    void set_broker_down(int broker_id, bool down);
    /// The next requests of `api` (any broker) fail with these Kafka error codes, in order
    /// (librdkafka's rd_kafka_resp_err_t values; -195 = a disconnect).
    void push_request_errors(kafka_api api, const std::vector<int>& error_codes);
    /// Drops the errors pushed for `api` that no request has received yet.
    void clear_request_errors(kafka_api api);
    /// Starts recording the requests the brokers receive, forgetting those recorded before.
    void start_request_tracking();
    void stop_request_tracking();
    /// Requests of `api` received (any broker) since start_request_tracking().
    std::size_t requests_received(kafka_api api) const;
    /// Moves the coordinator of consumer group `group` to `broker_id`.
    void set_group_coordinator(const std::string& group, int broker_id);
    /// Moves the leader of `topic` [`partition`] to `broker_id`.
    void set_partition_leader(const std::string& topic, int partition, int broker_id);
    /// Delays every response of `broker_id` by `rtt`.
    void set_broker_rtt(int broker_id, std::chrono::milliseconds rtt);
    /// Opaque access for fault-injection helpers inside lib/src.
    void* native_handle() const noexcept;

  private:
    struct state;
    std::unique_ptr<state> state_;
};

}  // namespace kt
