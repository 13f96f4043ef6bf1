// exactly_once: begin → handlers (their sends join the transaction) → send offsets → commit, on
// the transactional producer's own thread; outcomes come back to the shard.
#include "shard/transaction_cycle.hpp"

#include <unistd.h>

#include <limits>
#include <thread>

#include <boost/asio/post.hpp>

#include "consumer/shared_consumer.hpp"
#include "log.hpp"
#include "producer_state.hpp"
#include "shard/handler_call.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace kt::detail {
namespace {

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "host";
    return name;
}

producer_config transactional_config(const trigger_state& trigger, unsigned shard) {
    auto config = producer_config_for(trigger.options.consumer);
    const auto prefix = trigger.options.transactional_id.empty()
                            ? fmt::format("kt.{}.{}.{}", trigger.options.consumer.get("group.id"),
                                          trigger.options.name, host_name())
                            : trigger.options.transactional_id;
    config.set("transactional.id", fmt::format("{}.{}", prefix, shard));
    return config;
}

/// Turns a librdkafka transaction error into (abortable, exception), destroying it.
std::pair<bool, std::exception_ptr> take_error(rd_kafka_error_t* error, std::string_view what) {
    const bool abortable = rd_kafka_error_txn_requires_abort(error);
    auto exception = std::make_exception_ptr(
        kafka_error(make_kafka_error(rd_kafka_error_code(error)),
                    fmt::format("{}: {}", what, rd_kafka_error_string(error))));
    rd_kafka_error_destroy(error);
    return {abortable, exception};
}

void destroy(rd_kafka_error_t* error) {
    if (error) rd_kafka_error_destroy(error);
}

/// Runs `call` (returning rd_kafka_error_t*) until it succeeds or fails for a non-retriable
/// reason; at most `tries` times.
template <typename Call>
rd_kafka_error_t* with_retries(Call call, int tries = 10) {
    for (int i = 1;; ++i) {
        rd_kafka_error_t* error = call();
        if (!error || !rd_kafka_error_is_retriable(error) || i == tries) return error;
        rd_kafka_error_destroy(error);
        std::this_thread::sleep_for(100ms);
    }
}

}  // namespace

transaction_cycle::transaction_cycle(trigger_runner& runner)
    : runner_(runner),
      producer_(std::make_shared<kt::producer>(
          transactional_config(runner.owner(), runner.shard_index()))),
      timer_(runner.executor()) {}

transaction_cycle::~transaction_cycle() = default;

bool transaction_cycle::admits() const noexcept {
    const auto& options = runner_.owner().options;
    return phase_ == phase::open && !failed_ && !cancelled_ &&
           started_in_txn_ < std::max<std::size_t>(1, options.transaction_max_messages) &&
           std::chrono::steady_clock::now() - opened_at_ < options.transaction_interval;
}

void transaction_cycle::want() {
    if (phase_ == phase::idle && !cancelled_) begin();
}

const transaction_cycle::dead_letter_reason* transaction_cycle::to_dead_letter(
    const message& m) const {
    auto it = dead_letter_.find({m.partition(), m.offset()});
    return it == dead_letter_.end() ? nullptr : &it->second;
}

void transaction_cycle::begin() {
    phase_ = phase::beginning;
    auto& state = producer_access::of(*producer_);
    std::weak_ptr<trigger_state> weak = runner_.owner().shared_from_this();
    const bool init = !initialised_;
    state.post_job([weak, init, rk = state.client.get(), ex = runner_.executor(), this] {
        std::exception_ptr error;
        if (init) {
            if (auto* e = with_retries([&] { return rd_kafka_init_transactions(rk, 30000); }))
                error = take_error(e, "init_transactions").second;
        }
        if (!error)
            if (auto* e = rd_kafka_begin_transaction(rk))
                error = take_error(e, "begin_transaction").second;
        auto self = weak.lock();
        if (!self) return;
        asio::post(ex, [self = std::move(self), this, error, init] {
            if (cancelled_) return;
            if (error) {
                log(log_level::error, "trigger '{}': cannot open a transaction: {}",
                    runner_.owner().options.name, describe_failure(error).second);
                phase_ = phase::backing_off;
                timer_.expires_after(1s);
                timer_.async_wait([self, this](boost::system::error_code ec) {
                    if (ec || cancelled_) return;
                    phase_ = phase::idle;
                    runner_.pump();
                });
                return;
            }
            if (init) initialised_ = true;
            phase_ = phase::open;
            opened_at_ = std::chrono::steady_clock::now();
            started_in_txn_ = 0;
            // Ends the transaction after transaction_interval even while work keeps arriving.
            timer_.expires_after(runner_.owner().options.transaction_interval);
            timer_.async_wait([self, this](boost::system::error_code ec) {
                if (!ec) maybe_end();
            });
            runner_.pump();
            maybe_end();
        });
    });
}

void transaction_cycle::finished(const work_items& work, std::exception_ptr error,
                                 trigger_runner::outcome result) {
    for (const auto& m : work) done_.push_back(m);
    if (result == trigger_runner::outcome::dead_lettered) dead_lettered_in_txn_ += work.size();
    if (result == trigger_runner::outcome::failed) failed_in_txn_ += work.size();
    if (!error) return;
    const auto& policy = runner_.owner().options.retry;
    const auto& m = work.front();
    const auto key = std::make_pair(m.partition(), m.offset());
    const unsigned attempt = ++attempts_[key];
    const bool again = attempt < std::max(1u, policy.max_attempts) && retryable(policy, error);
    // Out of attempts: the next transaction writes its dead letter (or, without a dead letter
    // topic, skips it) instead of running the handler again; this one aborts either way, so no
    // partial output of the failed attempt is ever committed.
    const auto trace = m.trace();
    log(again ? log_level::warning : log_level::error,
        "trigger '{}' failed on {}[{}]@{} (attempt {} of {}): {}{}; its transaction aborts{}",
        runner_.owner().options.name, m.topic(), m.partition(), m.offset(), attempt,
        std::max(1u, policy.max_attempts), describe_failure(error).second,
        trace_note(trace ? &*trace : nullptr),
        again ? " and runs again" : ", and the next one gives the message up");
    if (again) add_local(runner_.metrics().retried, 1);
    if (!again)
        dead_letter_[key] = {describe_failure(error), attempt,
                             !runner_.owner().dead_letter_topic.empty()};
    if (!failed_) failure_ = error;
    failed_ = true;
}

void transaction_cycle::maybe_end() {
    if (phase_ != phase::open || cancelled_ || runner_.running() > 0) return;
    if (admits() && runner_.has_ready()) return;  // more work may join this transaction
    timer_.cancel();
    if (done_.empty()) {
        // Nothing ran (the transaction aged out while idle): commit the empty transaction.
        commit();
        return;
    }
    failed_ ? abort_and_retry() : commit();
}

partition_list_ptr transaction_cycle::offsets() {
    // Per partition: the lowest message still waiting in a lane, else after the last one done.
    std::map<std::int32_t, std::int64_t> next;
    std::map<std::int32_t, std::vector<std::int64_t>> done;
    for (const auto& m : done_) {
        auto& slot = next[m.partition()];
        slot = std::max(slot, m.offset() + 1);
        done[m.partition()].push_back(m.offset());
    }
    runner_.for_each_pending([&](const message& m) {
        if (auto it = next.find(m.partition()); it != next.end())
            it->second = std::min(it->second, m.offset());
    });
    partition_list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(next.size())));
    const auto& topic = runner_.owner().options.topic;
    const auto budget = runner_.owner().consumer->completion_map_budget();
    const auto key = trigger_key(runner_.owner().options.name);
    finishing_.clear();
    for (auto [partition, offset] : next) {
        auto* p = rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
        p->offset = offset;
        if (budget == 0) continue;
        // What finished above the offset: a restart skips it (the skip rule on assignment).
        auto above = intersect(unite(finished_[partition], ranges_of(std::move(done[partition]))),
                               {{offset, std::numeric_limits<std::int64_t>::max()}});
        set_metadata(*p, encode({offset, {{key, above}}}, budget).text);
        finishing_[partition] = std::move(above);
    }
    return list;
}

void transaction_cycle::commit() {
    phase_ = phase::ending;
    auto& state = producer_access::of(*producer_);
    std::weak_ptr<trigger_state> weak = runner_.owner().shared_from_this();
    auto consumer = runner_.owner().consumer;
    state.post_job([weak, consumer,
                    list = std::shared_ptr<rd_kafka_topic_partition_list_t>(
                        offsets().release(), rd_kafka_topic_partition_list_destroy),
                    rk = state.client.get(), ex = runner_.executor(), this] {
        std::exception_ptr error;
        bool abortable = false;
        if (list->cnt > 0) {
            if (auto* metadata = consumer->group_metadata()) {
                if (auto* e = with_retries([&] {
                        return rd_kafka_send_offsets_to_transaction(rk, list.get(), metadata, -1);
                    }))
                    std::tie(abortable, error) = take_error(e, "send_offsets_to_transaction");
                rd_kafka_consumer_group_metadata_destroy(metadata);
            } else {  // the consumer is closed or being recreated: these offsets are not ours
                abortable = true;
                error = std::make_exception_ptr(kafka_error(
                    make_kafka_error(RD_KAFKA_RESP_ERR__STATE), "consumer is not in its group"));
            }
        }
        if (!error)
            if (auto* e = with_retries([&] { return rd_kafka_commit_transaction(rk, -1); }))
                std::tie(abortable, error) = take_error(e, "commit_transaction");
        if (error && abortable) destroy(rd_kafka_abort_transaction(rk, -1));
        auto self = weak.lock();
        if (!self) return;
        asio::post(ex, [self = std::move(self), this, error] { on_ended(!error, error); });
    });
}

void transaction_cycle::abort_and_retry() {
    phase_ = phase::ending;
    auto& state = producer_access::of(*producer_);
    std::weak_ptr<trigger_state> weak = runner_.owner().shared_from_this();
    state.post_job([weak, rk = state.client.get(), ex = runner_.executor(), this] {
        std::exception_ptr error;
        if (auto* e = with_retries([&] { return rd_kafka_abort_transaction(rk, -1); }))
            error = take_error(e, "abort_transaction").second;
        auto self = weak.lock();
        if (!self) return;
        asio::post(ex, [self = std::move(self), this, error] { on_ended(false, error); });
    });
}

void transaction_cycle::on_ended(bool committed, std::exception_ptr error) {
    if (cancelled_) return;
    auto done = std::move(done_);
    done_.clear();
    const auto dead_lettered = std::exchange(dead_lettered_in_txn_, 0);
    const auto gave_up = std::exchange(failed_in_txn_, 0);
    const bool handler_failed = std::exchange(failed_, false);
    failure_ = nullptr;
    if (committed) {
        for (auto& [partition, above] : finishing_) finished_[partition] = std::move(above);
        finishing_.clear();
        for (const auto& m : done) {
            const auto key = std::make_pair(m.partition(), m.offset());
            attempts_.erase(key);
            dead_letter_.erase(key);
        }
        runner_.report_committed(done, dead_lettered, gave_up);
        phase_ = phase::idle;
        runner_.pump();
        return;
    }
    // Aborted (a handler failed, or the commit did): nothing of it is visible to read_committed
    // readers; its messages run again in a new transaction, after a backoff.
    if (error) {
        log(log_level::warning,
            "trigger '{}': transaction failed, running its {} message(s) again: {}",
            runner_.owner().options.name, done.size(), describe_failure(error).second);
        if (rd_kafka_fatal_error(producer_access::of(*producer_).client.get(), nullptr, 0)) {
            // Fenced or otherwise fatal: a new producer (init_transactions fences the old one).
            producer_ = std::make_shared<kt::producer>(
                transactional_config(runner_.owner(), runner_.shard_index()));
            initialised_ = false;
        }
    }
    runner_.requeue(std::move(done));
    unsigned attempt = 1;
    for (const auto& [key, n] : attempts_) attempt = std::max(attempt, n);
    const auto delay =
        handler_failed ? runner_.backoff(runner_.owner().options.retry, attempt) : 100ms;
    phase_ = phase::backing_off;
    timer_.expires_after(delay);
    timer_.async_wait(
        [self = runner_.owner().shared_from_this(), this](boost::system::error_code ec) {
            if (ec || cancelled_) return;
            phase_ = phase::idle;
            runner_.pump();
        });
}

void transaction_cycle::cancel() {
    cancelled_ = true;
    timer_.cancel();
    if (phase_ != phase::open) return;
    // The producer outlives this job: its destructor runs leftover jobs before it closes.
    auto& state = producer_access::of(*producer_);
    state.post_job([rk = state.client.get()] { destroy(rd_kafka_abort_transaction(rk, 5000)); });
}

}  // namespace kt::detail
