// kt::admin: small administrative client (topics, watermarks, committed offsets, a group's lag,
// offset resets), and a probe that says whether and why not a cluster can be reached.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <kt/config.hpp>

namespace kt {

/// An active member of a consumer group.
struct group_member {
    std::string member_id;
    std::string client_id;
    std::string host;
};

/// One partition of admin::describe_group().
struct partition_lag {
    std::string topic;
    std::int32_t partition = 0;
    std::optional<std::int64_t> committed;  ///< none: the group committed nothing here
    std::int64_t low_watermark = 0;
    std::int64_t high_watermark = 0;
    /// high - committed; high - low when nothing is committed (what a member starting from
    /// auto.offset.reset=earliest, kafka-triggers' default, would read).
    std::int64_t lag = 0;
    std::optional<group_member> owner;  ///< the active member the partition is assigned to
};

/// What admin::describe_group() found.
struct group_description {
    std::string group;
    /// "Empty", "Stable", "PreparingRebalance", "CompletingRebalance", "Dead", or "Unknown" (a
    /// KIP-848 group assigning or reconciling); empty when the cluster cannot describe groups
    /// (the embedded cluster has no DescribeGroups), and then `members` is empty too.
    std::string state;
    std::string type;  ///< "Classic", or "Consumer" (KIP-848); empty when unknown
    std::vector<group_member> members;
    std::vector<partition_lag> partitions;  ///< ordered by topic, then partition
};

/// Where admin::reset_offsets() moves a group's committed offsets.
struct offset_target {
    enum class kind { earliest, latest, timestamp, offset };
    kind what = kind::earliest;
    std::int64_t value = 0;  ///< ms since the epoch (timestamp), or the offset (offset)

    /// Parses "earliest", "latest", "timestamp:<ms>" or "offset:<n>" (n, ms >= 0); throws
    /// kt::config_error naming `text` and the accepted forms.
    static offset_target parse(std::string_view text);
};

/// One partition of admin::reset_offsets()' plan.
struct offset_reset {
    std::string topic;
    std::int32_t partition = 0;
    std::optional<std::int64_t> current;  ///< the committed offset before; none: no commit
    std::int64_t new_offset = 0;
    /// offset:<n> lay outside [low watermark, high watermark] and was moved to the nearer end.
    bool clamped = false;
};

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

    /// State, members and per-partition lag of consumer group `group`: every partition of
    /// `topic`, or (empty `topic`) of every topic the group committed to or is assigned. Throws
    /// kt::kafka_error naming an unknown `topic` (never creates it).
    group_description describe_group(const std::string& group, const std::string& topic = {},
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

    /// Moves `group`'s committed offsets on `topic` (all partitions, or those in `partitions`)
    /// to `target` and returns the plan; `dry_run` only returns it. As kafka-consumer-groups.sh,
    /// refused (dry run too) unless the group is Empty or Dead: kt::kafka_error NON_EMPTY_GROUP
    /// naming the group, its state and member count (also when the broker refuses the commit of
    /// a group whose state it could not describe). timestamp: the first offset at or after it,
    /// the high watermark where no record is; offset:<n> is clamped to [low, high] (`clamped`).
    /// Throws kt::kafka_error naming an unknown `topic`, kt::config_error for a partition the
    /// topic does not have.
    std::vector<offset_reset> reset_offsets(
        const std::string& group, const std::string& topic, const offset_target& target,
        const std::vector<std::int32_t>& partitions = {}, bool dry_run = false,
        std::chrono::milliseconds timeout = std::chrono::seconds(30));

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
