// Per-shard trigger runner: lanes, max_in_flight, handler coroutines, cancellation, fences.
#include "trigger_runner.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include "log.hpp"
#include "shared_consumer.hpp"

namespace asio = boost::asio;

namespace kt::detail {
namespace {

std::uint64_t fnv1a(std::string_view text) noexcept {
    std::uint64_t hash = 14695981039346656037ull;
    for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
    return hash;
}

completion completion_of(const message& m, std::uint32_t trigger_id) {
    const auto* data = m.data();
    return {completion::kind::done, trigger_id,    data->topic_id,
            data->generation,       m.partition(), m.offset()};
}

asio::awaitable<void> run_handler(std::shared_ptr<trigger_state> trigger, trigger_runner* runner,
                                  message m) {
    bool ok = true;
    try {
        co_await trigger->handle(m);
    } catch (const std::exception& e) {
        ok = false;
        log(log_level::error, "trigger '{}' failed on {}[{}]@{}: {}", trigger->options.name,
            m.topic(), m.partition(), m.offset(), e.what());
    } catch (...) {
        ok = false;
        log(log_level::error, "trigger '{}' failed on {}[{}]@{}: unknown exception",
            trigger->options.name, m.topic(), m.partition(), m.offset());
    }
    runner->finish(m, ok);
}

}  // namespace

unsigned shard_of(std::string_view topic, std::int32_t partition, unsigned shard_count) noexcept {
    // Consecutive partitions of a topic go to consecutive shards.
    return static_cast<unsigned>((fnv1a(topic) + static_cast<std::uint64_t>(partition)) %
                                 shard_count);
}

void trigger_state::bind(runtime& rt, std::shared_ptr<shared_consumer> owner) {
    consumer = std::move(owner);
    for (unsigned shard = 0; shard < rt.shard_count(); ++shard)
        runners.push_back(
            std::make_unique<trigger_runner>(*this, rt.shard(shard), consumer->link(shard)));
}

trigger_stats trigger_state::stats() const {
    trigger_stats s{options.name, options.topic};
    for (const auto& runner : runners) {
        s.handled += runner->handled.load(std::memory_order_relaxed);
        s.failed += runner->failed.load(std::memory_order_relaxed);
        s.in_flight += runner->in_flight.load(std::memory_order_relaxed);
    }
    return s;
}

trigger_runner::trigger_runner(trigger_state& owner, asio::any_io_executor shard, shard_link& link)
    : owner_(owner), shard_(std::move(shard)), link_(link) {}

std::uint64_t trigger_runner::lane_of(const message& m) const {
    const auto partition = static_cast<std::uint64_t>(m.partition());
    switch (owner_.options.ordering) {
        case ordering::partition:
            return partition;
        case ordering::key:
            return fnv1a(m.key()) * 31 + partition;
        case ordering::none:
            break;
    }
    return (partition << 48) ^ static_cast<std::uint64_t>(m.offset());
}

void trigger_runner::deliver(message m) {
    if (closing_ || cancelled_) return;  // dropped: the trigger is leaving or the stop timed out
    const auto id = lane_of(m);
    auto& l = lanes_[id];
    l.pending.push_back(std::move(m));
    enqueue_ready(id, l);
    pump();
}

void trigger_runner::enqueue_ready(std::uint64_t lane_id, lane& l) {
    if (l.busy || l.ready || l.pending.empty()) return;
    l.ready = true;
    ready_.push_back(lane_id);
}

void trigger_runner::pump() {
    const unsigned limit = std::max(1u, owner_.options.max_in_flight);
    while (running_ < limit && !ready_.empty()) {
        const auto id = ready_.front();
        ready_.pop_front();
        auto it = lanes_.find(id);
        if (it == lanes_.end()) continue;
        auto& l = it->second;
        l.ready = false;
        if (l.busy || l.pending.empty()) continue;
        message next = std::move(l.pending.front());
        l.pending.pop_front();
        start(id, std::move(next));
    }
}

void trigger_runner::start(std::uint64_t lane_id, message m) {
    lanes_[lane_id].busy = true;
    ++running_;
    in_flight.store(running_, std::memory_order_relaxed);
    if (owner_.inbox) {
        // Pull-style: the subscriber calls complete(), which comes back here as finish().
        asio::post(owner_.inbox->executor, [inbox = owner_.inbox, m = std::move(m)]() mutable {
            if (!inbox->channel.try_send(boost::system::error_code{}, std::move(m)))
                log(log_level::error, "subscription inbox full or closed; message dropped");
        });
        return;
    }
    const auto run_id = next_run_id_++;
    auto& signal =
        *signals_.emplace(run_id, std::make_unique<asio::cancellation_signal>()).first->second;
    asio::co_spawn(shard_, run_handler(owner_.shared_from_this(), this, std::move(m)),
                   asio::bind_cancellation_slot(signal.slot(), [keep = owner_.shared_from_this(),
                                                                this, run_id](std::exception_ptr) {
                       // Erase later: the slot is still in use while this handler runs.
                       asio::post(shard_, [keep, this, run_id] { signals_.erase(run_id); });
                   }));
}

void trigger_runner::finish(const message& m, bool ok) {
    --running_;
    in_flight.store(running_, std::memory_order_relaxed);
    if (cancelled_) return;  // never report a cancelled handler as done
    (ok ? handled : failed).fetch_add(1, std::memory_order_relaxed);
    link_.push_completion(completion_of(m, owner_.id));
    const auto id = lane_of(m);
    if (auto it = lanes_.find(id); it != lanes_.end()) {
        it->second.busy = false;
        // Partition lanes are few and reused; key and message lanes go when empty.
        if (it->second.pending.empty() && !it->second.ready &&
            owner_.options.ordering != ordering::partition)
            lanes_.erase(it);
        else
            enqueue_ready(id, it->second);
    }
    pump();
    report_fence_if_drained();
}

void trigger_runner::close() {
    closing_ = true;
    for (auto it = lanes_.begin(); it != lanes_.end();) {
        it->second.pending.clear();
        it = it->second.busy ? std::next(it) : lanes_.erase(it);
    }
    ready_.clear();
    report_fence_if_drained();
}

void trigger_runner::cancel() {
    cancelled_ = true;
    lanes_.clear();
    ready_.clear();
    for (auto& [id, signal] : signals_) signal->emit(asio::cancellation_type::all);
}

void trigger_runner::report_fence_if_drained() {
    if (!closing_ || fence_reported_ || running_ > 0) return;
    fence_reported_ = true;
    link_.push_completion({completion::kind::fence_done, owner_.id, 0, 0, 0, 0});
}

}  // namespace kt::detail
