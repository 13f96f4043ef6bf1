// kt::embedded_cluster: an in-process Kafka cluster (librdkafka's mock brokers on loopback TCP).
#pragma once

#include <memory>
#include <string>

namespace kt {

struct embedded_cluster_options {
    int brokers = 3;
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
    /// Takes broker `broker_id` (1-based) down or brings it back (fault injection).
    void set_broker_down(int broker_id, bool down);
    /// Opaque access for fault-injection helpers inside lib/src.
    void* native_handle() const noexcept;

  private:
    struct state;
    std::unique_ptr<state> state_;
};

}  // namespace kt
