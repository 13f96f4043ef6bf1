// exactly_once for one trigger on one shard: handlers run inside a Kafka transaction of the
// shard's transactional producer; the consumed offsets join the transaction; completions are
// reported only after the commit. A failure aborts the transaction and runs its messages again.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include <kt/producer.hpp>

#include "consumer/completion_map.hpp"
#include "rdkafka_handles.hpp"
#include "shard/trigger_runner.hpp"

namespace kt::detail {

class transaction_cycle {
  public:
    /// Creates the transactional producer ("<transactional_id prefix>.<shard>").
    explicit transaction_cycle(trigger_runner& runner);
    ~transaction_cycle();

    kt::producer& producer() noexcept { return *producer_; }
    /// Whether the runner may start work now (a transaction is open and not full).
    bool admits() const noexcept;
    /// The runner has ready work: open a transaction unless one is open or coming.
    void want();
    void started() { ++started_in_txn_; }
    /// Work of the open transaction finished (`error` set when it failed).
    void finished(const work_items& work, std::exception_ptr error, trigger_runner::outcome result);
    /// The failure of a message that exhausted its attempts (see handler_call.hpp).
    using dead_letter_reason = detail::dead_letter_reason;
    const dead_letter_reason* to_dead_letter(const message& m) const;
    /// The attempt `m` is on (1: it has not failed yet).
    unsigned attempt_of(const message& m) const {
        const auto it = attempts_.find({m.partition(), m.offset()});
        return it == attempts_.end() ? 1 : it->second + 1;
    }
    /// Work of the open transaction was cancelled: it must abort, not commit.
    void poison() { failed_ = true; }
    /// Ends the transaction when it is full, old, failed, or nothing else is ready.
    void maybe_end();
    /// Nothing is open or being committed (a fence may be reported).
    bool idle() const noexcept { return phase_ == phase::idle || phase_ == phase::backing_off; }
    /// The stop deadline passed: abort what is open; report nothing.
    void cancel();

  private:
    enum class phase { idle, beginning, open, ending, backing_off };
    void begin();
    void commit();
    void abort_and_retry();
    void on_ended(bool committed, std::exception_ptr error);
    /// The transaction's offsets, each with its completion map (what finished above it, in this
    /// transaction and in committed ones), which on_ended() keeps once the commit succeeds.
    partition_list_ptr offsets();

    trigger_runner& runner_;
    std::shared_ptr<kt::producer> producer_;
    bool initialised_ = false;
    phase phase_ = phase::idle;
    std::size_t started_in_txn_ = 0;
    std::chrono::steady_clock::time_point opened_at_;
    std::vector<message> done_;  // finished in the open transaction
    // Per partition, what committed transactions finished above the offsets they committed, and
    // what it becomes when the one being committed succeeds.
    std::map<std::int32_t, offset_ranges> finished_, finishing_;
    std::size_t dead_lettered_in_txn_ = 0;
    std::size_t failed_in_txn_ = 0;
    bool failed_ = false;
    std::exception_ptr failure_;
    std::map<std::pair<std::int32_t, std::int64_t>, unsigned> attempts_;
    std::map<std::pair<std::int32_t, std::int64_t>, dead_letter_reason> dead_letter_;
    boost::asio::steady_timer timer_;
    bool cancelled_ = false;
};

}  // namespace kt::detail
