// kt::admin: small administrative client (topics, watermarks, committed offsets).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

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

}  // namespace kt
