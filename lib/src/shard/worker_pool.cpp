// A runner's worker slots, parking, waking and retiring, and its keepalive count. Shard thread.
#include "shard/worker_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;

namespace kt::detail {

void worker_pool::retire_parked() {
    for (const auto slot : std::exchange(parked_, {})) {
        wake(*std::exchange(runs_[slot], nullptr), false);
        free_runs_.push_back(slot);
    }
}

void worker_pool::wake(worker& w, bool with_work) {
    // Posted, never called inline: resuming here would re-enter the runner mid-update.
    asio::post(shard_, [resume = std::move(*w.parked), with_work]() mutable {
        std::move(resume)(with_work);
    });
    w.parked.reset();
}

std::optional<std::uint32_t> worker_pool::hand_to_parked(partition_key partition,
                                                         work_items& work) {
    if (parked_.empty()) return std::nullopt;
    const auto slot = parked_.back();
    parked_.pop_back();
    auto& w = *runs_[slot];
    w.partition = partition;
    w.active = true;
    w.handoff = std::move(work);
    w.handoff_keep.emplace(*this);
    wake(w, true);
    return slot;
}

std::uint32_t worker_pool::add(partition_key partition) {
    std::uint32_t slot;
    if (free_runs_.empty()) {
        slot = static_cast<std::uint32_t>(runs_.size());
        runs_.emplace_back();
    } else {
        slot = free_runs_.back();
        free_runs_.pop_back();
    }
    runs_[slot] = std::make_shared<worker>();
    runs_[slot]->partition = partition;
    runs_[slot]->active = true;
    return slot;
}

void worker_pool::exits(std::uint32_t slot) {
    runs_[slot] = nullptr;  // its signal lives on with the coroutine's own reference
    free_runs_.push_back(slot);
}

asio::awaitable<bool> worker_pool::park(std::uint32_t slot, std::optional<shard_keepalive>& keep) {
    auto self = runs_[slot];  // the pool may be gone when this resumes
    self->active = false;
    const bool resumed = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(bool)>(
        [this, slot, &keep](auto resume) {
            runs_[slot]->parked.emplace(std::move(resume));
            parked_.push_back(slot);
            // Last: this may destroy the trigger, whose runner's pool then retires the worker
            // just parked.
            auto released = std::move(keep);
            keep.reset();
        },
        asio::use_awaitable);
    if (resumed) {
        keep.emplace(std::move(*self->handoff_keep));
        self->handoff_keep.reset();
    }
    co_return resumed;
}

void worker_pool::cancel_partition(partition_key partition) {
    for (auto& w : runs_)
        if (w && w->active && w->partition == partition)
            w->signal.emit(asio::cancellation_type::all);
}

void worker_pool::cancel_all() {
    for (auto& w : runs_)
        if (w && w->active) w->signal.emit(asio::cancellation_type::all);
}

shard_keepalive::shard_keepalive(worker_pool& pool) noexcept : pool_(&pool) {
    if (pool.keepalives_++ == 0) pool.kept_ = pool.owner_.shared_from_this();
}

shard_keepalive::shard_keepalive(const shard_keepalive& other) noexcept : pool_(other.pool_) {
    if (pool_) ++pool_->keepalives_;
}

shard_keepalive::~shard_keepalive() {
    if (!pool_ || --pool_->keepalives_ > 0) return;
    // May destroy the trigger and with it the runner and this pool: nothing of it is touched after
    // this.
    auto last = std::move(pool_->kept_);
}

}  // namespace kt::detail
