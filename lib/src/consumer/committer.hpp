// Sends the consumer's commits and reads their answers: periodic, requested (someone waits),
// at-most-once holds, and synchronous ones (revocation, trigger removal, the final commit).
// Poll thread only.
#pragma once

#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "consumer/commit_ledger.hpp"
#include "consumer/consumer_probe.hpp"
#include "consumer/done_handler.hpp"
#include "consumer/kafka_client.hpp"
#include "consumer/router.hpp"

namespace kt::detail {

/// The error a refused commit (or another librdkafka call) completes its waiter with.
std::exception_ptr kafka_exception(rd_kafka_resp_err_t err, std::string_view what);
/// A commit refused because the group is rebalancing or our generation ended: retried, not
/// worth a warning.
bool is_rebalance_commit_error(rd_kafka_resp_err_t err);

/// The answer to an at-most-once commit (a refusal is logged already).
struct hold_answer {
    bool acknowledged;
    std::vector<commit_entry> entries;  // what the broker acknowledged
};

class committer {
  public:
    committer(std::string group, kafka_client& client, const router& routes, commit_ledger& ledger,
              consumer_probe& probe)
        : group_(std::move(group)),
          client_(client),
          routes_(routes),
          ledger_(ledger),
          probe_(probe) {}

    /// Commits every finished offset with its completion map: periodic (no `done`) or requested
    /// (resends all, completes `done` once the broker answered).
    void send(done_handler done);
    /// A periodic or requested commit awaits its answer.
    bool in_flight() const;
    /// At most once: commits the positions in `entries`; false when it could not be sent.
    bool send_hold(const std::vector<commit_entry>& entries);
    /// Commits the finished offsets of `only` (every partition when null) and waits.
    rd_kafka_resp_err_t commit_now(const std::vector<partition_id>* only);
    /// The commit before closing: true once it succeeded or cannot any more; false while a
    /// rebalance refuses it and `deadline` allows another try (100 ms later).
    bool final_commit_settled(std::chrono::steady_clock::time_point deadline);
    /// The answer to a commit_async: records what the broker acknowledged and completes the
    /// waiter; an at-most-once commit's answer is returned for the hold to release.
    std::optional<hold_answer> on_answer(rd_kafka_resp_err_t err,
                                         const rd_kafka_topic_partition_list_t* offsets,
                                         void* opaque);
    /// Fails the commits still awaiting an answer their client will not give any more.
    void fail_waiters(rd_kafka_resp_err_t err);

  private:
    /// The opaque of a commit sent with commit_async (periodic commits have none).
    struct pending_commit {
        enum class kind : std::uint8_t { periodic, requested, hold };
        kind what;
        done_handler done;  // requested
    };
    partition_list_ptr partition_list(const std::vector<commit_entry>& entries) const;
    /// The entries of `list` that name a known topic and carry no error.
    std::vector<commit_entry> commit_entries(const rd_kafka_topic_partition_list_t* list) const;
    void record_committed(const rd_kafka_topic_partition_list_t* offsets);

    const std::string group_;
    kafka_client& client_;
    const router& routes_;
    commit_ledger& ledger_;
    consumer_probe& probe_;  // counts the commits sent
    std::map<const pending_commit*, std::unique_ptr<pending_commit>> pending_;
    std::chrono::steady_clock::time_point final_retry_at_;
};

}  // namespace kt::detail
