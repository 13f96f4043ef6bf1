// kt::admin: small administrative client (topics, watermarks, committed offsets), and a probe
// that says whether and why not a cluster can be reached.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <system_error>

#include <kt/config.hpp>

namespace kt {

/// Administrative look-ups against a cluster. Blocking calls, bounded by `timeout`; for setup,
/// tests and reports, not for hot paths. Throws kt::kafka_error on failure.
class admin {
  public:
    /// `config` must contain bootstrap.servers; may contain security properties.
    explicit admin(const consumer_config& config);
    ~admin();
    admin(const admin&) = delete;
    admin& operator=(const admin&) = delete;

    /// Creates the topic; true if created, false if it already existed.
    bool create_topic(const std::string& topic, int partitions, int replication_factor = 1,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
    /// Partition count of `topic`; throws when the topic does not exist.
    int partition_count(const std::string& topic,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// partition → high watermark (offset of the next record to be written).
    std::map<std::int32_t, std::int64_t> high_watermarks(
        const std::string& topic, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// partition → committed offset of `group` (partitions without a commit are omitted).
    std::map<std::int32_t, std::int64_t> committed(
        const std::string& group, const std::string& topic,
        std::chrono::milliseconds timeout = std::chrono::seconds(10));

  private:
    struct state;
    std::unique_ptr<state> state_;
};

/// What probe_brokers() found.
struct broker_probe {
    bool reachable = false;  ///< a bootstrap server answered a metadata request
    /// Why not: RD_KAFKA_RESP_ERR__TRANSPORT (a connection failed), __RESOLVE (a name did not
    /// resolve), __AUTHENTICATION, __SSL, __TIMED_OUT (nothing answered nor failed), ...
    std::error_code error;
    /// librdkafka's words for the first failure, without its broker prefix and retry details,
    /// e.g. "Connect to ipv4#127.0.0.1:1 failed: Connection refused"; empty when none came.
    std::string reason;
};

/// Asks `config`'s bootstrap servers for the cluster's metadata until one answers or `timeout`
/// passes; a first contact that says in one answer why the cluster cannot be reached. The
/// probe's own librdkafka log lines are left out (its outcome is the answer). Blocking; throws
/// kt::config_error for an invalid config.
broker_probe probe_brokers(const consumer_config& config,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace kt
