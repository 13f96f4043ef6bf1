// A runner's finished messages on their way to the poll thread, as runs: messages of one
// partition that finish in the order they were handed over go back as one range, not a
// completion each (at 100 triggers on a partition, a completion per handler call overflowed the
// ring and cost the poll thread a lookup and a ledger update per call). Shard thread.
#pragma once

#include <cstdint>
#include <vector>

#include <kt/message.hpp>

#include "shard/partition_key.hpp"
#include "shard/shard_link.hpp"

namespace kt::detail {

class completion_runs {
  public:
    completion_runs(shard_link& link, std::uint32_t trigger_id)
        : link_(link), trigger_(trigger_id) {}

    /// `m` finished, and every message of its partition handed over before it was reported
    /// (here, alone, or as broken off). Returns true when this opened the first run since the
    /// last flush(): the caller arranges the next one.
    bool add(const message& m) {
        const bool first = runs_.empty();
        const auto* data = m.data();
        const auto partition = key_of_partition(data->topic_id, data->partition);
        if (auto* r = find(partition); r && r->generation == data->generation) {
            r->last = data->offset;
            return false;
        } else if (r) {
            send(*r);
            *r = {partition, data->generation, data->offset, data->offset};
            return false;
        }
        runs_.push_back({partition, data->generation, data->offset, data->offset});
        return first;
    }
    /// `m` finished out of the order it was handed over in: it goes alone.
    void send_alone(const message& m) {
        const auto* data = m.data();
        link_.push_completion({completion::kind::done, trigger_, data->topic_id, data->generation,
                               data->partition, data->offset});
    }
    /// The next message of `m`'s partition is not reported in order (retried beside the lane,
    /// dead-lettered, cancelled): its run ends before it.
    void break_before(const message& m) {
        const auto partition = key_of_partition(m);
        if (auto* r = find(partition)) {
            send(*r);
            *r = runs_.back();
            runs_.pop_back();
        }
    }
    /// Sends every open run (before a revoke or fence report, and once per burst of work).
    void flush() {
        for (const auto& r : runs_) send(r);
        runs_.clear();
    }

  private:
    struct run {
        partition_key partition;
        std::uint32_t generation;
        std::int64_t first;
        std::int64_t last;
    };
    run* find(partition_key partition) {
        for (auto& r : runs_)
            if (r.partition == partition) return &r;
        return nullptr;
    }
    void send(const run& r) {
        link_.push_completion({completion::kind::done, trigger_, topic_id_of(r.partition),
                               r.generation, partition_of(r.partition), r.last, r.first});
    }

    shard_link& link_;
    const std::uint32_t trigger_;
    std::vector<run> runs_;  // one per partition with work finished since the last flush
};

}  // namespace kt::detail
