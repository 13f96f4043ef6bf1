// Commits: building the lists, sending them, and what their answers mean.
#include "committer.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "log.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace kt::detail {

std::exception_ptr kafka_exception(rd_kafka_resp_err_t err, std::string_view what) {
    return std::make_exception_ptr(
        kafka_error(make_kafka_error(err), fmt::format("{}: {}", what, rd_kafka_err2str(err))));
}

bool is_rebalance_commit_error(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
           err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR__STATE;
}

partition_list_ptr committer::partition_list(const std::vector<commit_entry>& entries) const {
    partition_list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(entries.size())));
    for (const auto& e : entries) {
        auto* p = rd_kafka_topic_partition_list_add(
            list.get(), routes_.topic_name(e.partition.first).c_str(), e.partition.second);
        p->offset = e.offset;
        set_metadata(*p, e.metadata);
    }
    return list;
}

std::vector<commit_entry> committer::commit_entries(
    const rd_kafka_topic_partition_list_t* list) const {
    std::vector<commit_entry> entries;
    for (int i = 0; i < list->cnt; ++i) {
        const auto& p = list->elems[i];
        const auto* topic = routes_.find_topic(p.topic);
        if (p.err || !topic) continue;
        entries.push_back({{*topic, p.partition}, p.offset});
    }
    return entries;
}

void committer::send(done_handler done) {
    // A requested commit resends everything, so its waiter resumes only after an acknowledgement
    // that covers every finished offset (a periodic commit may still be in flight).
    const auto entries = ledger_.to_commit(nullptr, static_cast<bool>(done));
    if (entries.empty()) {
        if (done) complete(std::move(done));
        return;
    }
    ledger_.sent(entries);
    auto list = partition_list(entries);
    const auto what = done ? pending_commit::kind::requested : pending_commit::kind::periodic;
    auto op = std::make_unique<pending_commit>(pending_commit{what, std::move(done)});
    probe_.committed();
    if (auto err = client_.commit_async(list.get(), op.get())) {
        ledger_.refused(entries);
        if (op->done) complete(std::move(op->done), kafka_exception(err, "commit"));
        return;
    }
    pending_.emplace(op.get(), std::move(op));
}

bool committer::in_flight() const {
    return std::any_of(pending_.begin(), pending_.end(),
                       [](const auto& p) { return p.second->what != pending_commit::kind::hold; });
}

bool committer::send_hold(const std::vector<commit_entry>& entries) {
    auto list = partition_list(entries);
    auto op = std::make_unique<pending_commit>(pending_commit{pending_commit::kind::hold, {}});
    probe_.committed();
    if (auto err = client_.commit_async(list.get(), op.get())) {
        log(log_level::warning, "group '{}': at-most-once commit failed: {}", group_,
            rd_kafka_err2str(err));
        return false;
    }
    pending_.emplace(op.get(), std::move(op));
    return true;
}

std::optional<hold_answer> committer::on_answer(rd_kafka_resp_err_t err,
                                                const rd_kafka_topic_partition_list_t* offsets,
                                                void* opaque) {
    // committed() reports what the broker acknowledged, nothing a refused commit only asked for.
    if (offsets && !err) record_committed(offsets);
    auto node = pending_.extract(static_cast<const pending_commit*>(opaque));
    if (!node) return std::nullopt;  // already failed (the client was replaced)
    auto op = std::move(node.mapped());
    if (op->what == pending_commit::kind::hold) {
        if (err || !offsets) {
            log(is_rebalance_commit_error(err) ? log_level::debug : log_level::warning,
                "group '{}': at-most-once commit failed: {}; retrying", group_,
                rd_kafka_err2str(err));
            return hold_answer{false, {}};
        }
        return hold_answer{true, commit_entries(offsets)};
    }
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        // A commit lost to a rebalance is retried on the next interval; never a handler failure.
        ledger_.refused_all();
        log(is_rebalance_commit_error(err) ? log_level::debug : log_level::warning,
            "group '{}': commit failed: {}", group_, rd_kafka_err2str(err));
    }
    if (op->done) complete(std::move(op->done), err ? kafka_exception(err, "commit") : nullptr);
    return std::nullopt;
}

rd_kafka_resp_err_t committer::commit_now(const std::vector<partition_id>* only) {
    const auto entries = ledger_.to_commit(only, false);
    if (entries.empty()) return RD_KAFKA_RESP_ERR_NO_ERROR;
    ledger_.sent(entries);
    auto list = partition_list(entries);
    probe_.committed();
    auto err = client_.commit_sync(list.get());
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        log(is_rebalance_commit_error(err) ? log_level::info : log_level::warning,
            "group '{}': commit failed: {}", group_, rd_kafka_err2str(err));
        ledger_.refused(entries);  // the next commit (the final one on stop) sends them again
    } else {
        record_committed(list.get());
    }
    return err;
}

bool committer::final_commit_settled(steady::time_point deadline) {
    if (steady::now() < final_retry_at_) return false;
    const auto err = commit_now(nullptr);
    // A rebalance under way (another member joining, our own last subscription change) refuses
    // commits until it completes. The partitions stay ours meanwhile, so the loop keeps polling
    // (which completes it) and commits again, until the stop deadline.
    const bool rebalancing = err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
                             err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION;
    if (rebalancing && steady::now() < deadline) {
        final_retry_at_ = steady::now() + 100ms;
        return false;
    }
    if (err)
        log(log_level::warning,
            "group '{}': the final commit was refused ({}); the next owner repeats the work "
            "completed since the last commit",
            group_, rd_kafka_err2str(err));
    return true;
}

void committer::record_committed(const rd_kafka_topic_partition_list_t* offsets) {
    for (int i = 0; i < offsets->cnt; ++i) {
        const auto& p = offsets->elems[i];
        if (p.err == RD_KAFKA_RESP_ERR_NO_ERROR)
            ledger_.acknowledge(p.topic, p.partition, p.offset);
    }
}

void committer::fail_waiters(rd_kafka_resp_err_t err) {
    for (auto& [key, op] : std::exchange(pending_, {}))
        if (op->what == pending_commit::kind::requested)
            complete(std::move(op->done), kafka_exception(err, "commit"));
}

}  // namespace kt::detail
