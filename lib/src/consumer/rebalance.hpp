// The rebalance callback's work: assign (queues, ledger entries, listeners), revoke (drain ->
// listeners -> commit -> acknowledge), lose (cancel, remember completed positions). Poll thread
// only (inside librdkafka's rebalance callback, or a recreation).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <kt/options.hpp>
#include <kt/runtime.hpp>

#include "consumer/commit_ledger.hpp"
#include "consumer/committer.hpp"
#include "consumer/hold_until_committed.hpp"
#include "consumer/kafka_client.hpp"
#include "consumer/router.hpp"
#include "consumer/wakeup.hpp"
#include "shard/shard_link.hpp"

namespace kt::detail {

/// What a revocation needs from the loop while it waits for the shards: read their completions
/// (revoke_done reports among them) and push what is queued behind a full ring.
class shard_pump {
  public:
    virtual void pump_shards() = 0;

  protected:
    ~shard_pump() = default;
};

/// The parts a rebalance works on (siblings of it, owned by the consumer).
struct rebalance_parts {
    kafka_client& client;
    router& routes;
    commit_ledger& ledger;
    basic_hold_until_committed<message_ptr>& hold;
    committer& commits;
    const std::vector<std::shared_ptr<shard_link>>& links;
    shard_pump& pump;
};

class rebalance {
  public:
    /// How long an assignment under exactly_once waits for its committed offsets to be readable:
    /// librdkafka's default transaction.timeout.ms (60 s), after which the coordinator aborts a
    /// transaction left open, and a margin.
    static constexpr std::chrono::seconds exactly_once_read_timeout{70};

    rebalance(std::string group, rebalance_parts parts, runtime& rt, const host_options& options,
              std::weak_ptr<wakeup> wake)
        : group_(std::move(group)), p_(parts), rt_(rt), options_(options), wake_(std::move(wake)) {}

    /// One rebalance callback; `stopping`: a stop is draining (revocations do not wait again,
    /// new partitions stay paused).
    void on_event(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                  bool stopping);
    /// Every assigned partition is lost (the client is being replaced).
    void lose_all(bool stopping);
    /// A shard reported that no handler of the revoked partition `id` runs any more.
    void revoke_reported(const partition_id& id);

  private:
    enum class event { assigned, revoked, lost };
    void assign(rd_kafka_topic_partition_list_t* partitions);
    /// The broker's commits (offsets and metadata) of `partitions` when needed, else null.
    partition_list_ptr read_committed(const rd_kafka_topic_partition_list_t* partitions);
    /// The completion map committed for a partition, when it carries one of ours.
    std::optional<completion_map> restored_map(const rd_kafka_topic_partition_list_t* committed,
                                               const char* topic, std::int32_t partition);
    /// Starts at the completed position of a partition lost a moment ago, if it comes back.
    void resume_lost_positions(rd_kafka_topic_partition_list_t* partitions,
                               const rd_kafka_topic_partition_list_t* committed);
    void revoke(const rd_kafka_topic_partition_list_t* partitions, bool lost, bool stopping);
    bool revokes_drained() const;
    void cancel_partition_handlers();
    /// Runs the triggers' listeners for `what` on `ids` and waits for them (bounded).
    void notify_listeners(event what, const std::vector<partition_id>& ids);
    std::vector<partition_id> ids_of(const rd_kafka_topic_partition_list_t* partitions);

    const std::string group_;
    rebalance_parts p_;
    runtime& rt_;
    const host_options& options_;
    std::weak_ptr<wakeup> wake_;
    std::uint32_t next_generation_ = 0;
    std::map<partition_id, unsigned> revokes_pending_;  // revoke_done reports still expected
    /// Completed positions of partitions lost without a commit: (offset, valid until).
    std::map<partition_id, std::pair<std::int64_t, std::chrono::steady_clock::time_point>>
        lost_positions_;
    std::int64_t last_revoke_ms_ = -1;  // revoke callback -> acknowledge
    rd_kafka_resp_err_t last_revoke_commit_ = RD_KAFKA_RESP_ERR_NO_ERROR;
};

}  // namespace kt::detail
