// trigger_host: the façade, and host_core sequencing the host's parts (the consumer and producer
// pools, the trigger registry, metrics) under one lock. Any thread.
#include <kt/trigger_host.hpp>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "consumer/shared_consumer.hpp"
#include "host/consumer_pool.hpp"
#include "host/host_metrics.hpp"
#include "host/producer_pool.hpp"
#include "host/trigger_registry.hpp"
#include "host/trigger_validation.hpp"
#include "log.hpp"
#include "rdkafka_handles.hpp"
#include "shard/trigger_runner.hpp"

namespace asio = boost::asio;

namespace kt {
namespace detail {

class host_core : public std::enable_shared_from_this<host_core> {
  public:
    host_core(runtime& rt, host_options options)
        : rt_(rt),
          options_(options),
          consumers_(rt_, options_),
          tracing_(options_.tracing ? std::make_shared<const tracing_hooks>(options_.tracing)
                                    : nullptr) {}

    void add(std::shared_ptr<trigger_state> trigger) {
        const auto& opts = trigger->options;
        const auto kind = trigger->inbox            ? handler_kind::pull
                          : trigger->code.transform ? handler_kind::transform
                          : trigger->code.batch     ? handler_kind::batch
                                                    : handler_kind::plain;
        if (auto problem = find_problem(opts, kind))
            throw config_error(problem->field,
                               opts.name.empty()
                                   ? problem->message
                                   : fmt::format("trigger '{}': {}", opts.name, problem->message));
        if (opts.delivery == delivery_guarantee::exactly_once &&
            opts.ordering != ordering::partition && !options_.completion_map)
            throw config_error(
                "completion_map",
                fmt::format("trigger '{}': exactly_once with ordering other than partition needs "
                            "completion_map: without it a restart outputs again what finished "
                            "above a message still running",
                            opts.name));
        auto key =
            sharing_key::of(opts.consumer, options_.sharing, opts.topic, opts.name, opts.delivery);
        // Dead letters and retry records go through one producer, opened on first use.
        if (!trigger->inbox && (opts.dead_letter.enabled || !trigger->retry_topics.empty())) {
            if (opts.dead_letter.enabled)
                trigger->dead_letter_topic =
                    opts.dead_letter.topic.empty() ? opts.topic + ".dlq" : opts.dead_letter.topic;
            auto config = opts.dead_letter.producer.properties().empty()
                              ? producer_config_for(opts.consumer)
                              : opts.dead_letter.producer;
            (void)make_conf(config);  // invalid properties are named now, not at the first failure
            trigger->open_dead_letters = [weak = weak_from_this(), config] {
                auto self = weak.lock();
                if (!self) throw std::logic_error("trigger_host is gone");
                return self->producer_for(config, /*even_if_stopped=*/true);
            };
        }
        if (trigger->code.transform)
            trigger->output = producer_for(producer_config_for(opts.consumer));
        trigger->tracing = tracing_;
        std::shared_ptr<shared_consumer> consumer;
        bool start_now = false;
        {
            std::lock_guard lock(mutex_);
            if (stopped_) throw std::logic_error("trigger_host is stopped");
            if (triggers_.contains(opts.name))
                throw config_error("name", fmt::format("duplicate trigger name '{}'", opts.name));
            consumer = consumers_.acquire(key, opts.consumer, opts.delivery);
            trigger->bind(rt_, consumer);
            triggers_.add(trigger, key);
            warn_split_partitions(opts);
            start_now = started_;
        }
        consumer->attach(trigger);
        if (start_now) consumer->start();
    }

    asio::awaitable<void> remove(std::string name) {
        std::optional<trigger_registry::trigger_entry> removed;
        {
            std::lock_guard lock(mutex_);
            removed = triggers_.remove(name);
            if (!removed) throw std::invalid_argument(fmt::format("no trigger named '{}'", name));
        }
        auto trigger = removed->trigger;
        auto consumer = trigger->consumer;
        // The operation is a named local, never a temporary inside the co_await expression:
        // GCC 12 can destroy such temporaries twice (seen as a double release under TSan).
        auto detach = consumer->async_detach(trigger, asio::use_awaitable);
        co_await std::move(detach);
        close_inbox(trigger);
        trigger->release_producers();
        release_unused_producers();
        bool last = false;
        {
            std::lock_guard lock(mutex_);
            last = consumers_.release(removed->key);
        }
        // The last trigger leaving closes the consumer (drained and committed).
        if (last) {
            auto stop = consumer->async_stop(asio::use_awaitable);
            co_await std::move(stop);
        }
    }

    void start() {
        std::vector<std::shared_ptr<shared_consumer>> to_start;
        {
            std::lock_guard lock(mutex_);
            if (started_ || stopped_) return;
            started_ = true;
            to_start = consumers_.consumers();
        }
        for (auto& consumer : to_start) consumer->start();
        rt_.on_stop([weak = weak_from_this()]() -> asio::awaitable<void> {
            if (auto self = weak.lock()) co_await self->stop();
        });
    }

    asio::awaitable<void> stop() {
        auto [consumers, triggers] = take_all();
        for (auto& consumer : consumers) {
            auto stop = consumer->async_stop(asio::use_awaitable);
            co_await std::move(stop);
        }
        after_stop(triggers);
    }

    /// For the destructor: the same stop, waited for on this thread with a bound.
    void stop_blocking() {
        auto [consumers, triggers] = take_all();
        for (auto& consumer : consumers) {
            auto promise = std::make_shared<std::promise<void>>();
            auto future = promise->get_future();
            consumer->async_stop([promise](std::exception_ptr) { promise->set_value(); });
            const auto bound = options_.drain_timeout + std::chrono::seconds(15);
            if (future.wait_for(bound) != std::future_status::ready)
                log(log_level::error, "consumer for group '{}' did not stop within {} ms",
                    consumer->group(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(bound).count());
        }
        after_stop(triggers);
    }

    asio::awaitable<void> commit() {
        std::vector<std::shared_ptr<shared_consumer>> consumers;
        {
            std::lock_guard lock(mutex_);
            consumers = consumers_.consumers();
        }
        for (auto& consumer : consumers) {
            auto commit = consumer->async_commit(asio::use_awaitable);
            co_await std::move(commit);
        }
    }

    /// Dead letters may still be written while a stop drains: `even_if_stopped`.
    std::shared_ptr<producer> producer_for(const producer_config& config,
                                           bool even_if_stopped = false) {
        std::lock_guard lock(mutex_);
        if (stopped_ && !even_if_stopped) throw std::logic_error("trigger_host is stopped");
        return producers_.get(config);
    }

    std::size_t consumer_count() const {
        std::lock_guard lock(mutex_);
        return consumers_.size();
    }

    std::vector<trigger_stats> stats() const {
        std::lock_guard lock(mutex_);
        return triggers_.stats();
    }

    std::vector<kt::consumer_stats> consumer_stats() const {
        std::lock_guard lock(mutex_);
        return consumers_.stats();
    }

    metrics_snapshot metrics() const {
        metrics_snapshot snapshot{.taken = std::chrono::system_clock::now(),
                                  .process_threads = process_thread_count()};
        std::lock_guard lock(mutex_);
        aggregate_metrics(snapshot, consumers_, triggers_, producers_, options_.health, started_,
                          stopped_);
        return snapshot;
    }

    bool set_paused(const std::string& name, bool paused) {
        std::shared_ptr<trigger_state> trigger;
        {
            std::lock_guard lock(mutex_);
            trigger = triggers_.find(name);
            if (!trigger) return false;
        }
        if (trigger->paused.exchange(paused) == paused || paused) return true;
        log(log_level::info, "trigger '{}' resumed", name);
        for (unsigned shard = 0; shard < trigger->runners.size(); ++shard)
            asio::post(rt_.shard(shard), [trigger, shard] { trigger->runners[shard]->pump(); });
        return true;
    }

    committed_offsets committed() const {
        std::lock_guard lock(mutex_);
        return consumers_.committed();
    }

    runtime& rt() { return rt_; }

    std::uint32_t next_trigger_id() {
        std::lock_guard lock(mutex_);
        return triggers_.next_id();
    }

  private:
    /// Producers only the pool still holds (their triggers left) are flushed and closed.
    void release_unused_producers() {
        std::vector<std::shared_ptr<producer>> unused;
        {
            std::lock_guard lock(mutex_);
            unused = producers_.take_unused();
        }
    }

    std::pair<std::vector<std::shared_ptr<shared_consumer>>,
              std::vector<std::shared_ptr<trigger_state>>>
    take_all() {
        std::lock_guard lock(mutex_);
        if (stopped_) return {};
        stopped_ = true;
        auto consumers = consumers_.close_all();
        return {consumers, triggers_.retire_all()};
    }

    /// Once the consumers stopped: inboxes close, parked workers leave (they keep their shard's
    /// io_context busy) and the producers go last (dead letters are written while draining).
    void after_stop(const std::vector<std::shared_ptr<trigger_state>>& triggers) {
        for (auto& trigger : triggers) {
            close_inbox(trigger);
            for (unsigned shard = 0; shard < trigger->runners.size(); ++shard)
                asio::post(rt_.shard(shard),
                           [trigger, shard] { trigger->runners[shard]->retire(); });
        }
        std::map<sharing_key, std::shared_ptr<producer>> producers;
        {
            std::lock_guard lock(mutex_);
            producers = producers_.take_all();
        }
        // Triggers keep references too: each producer flushes when its last owner lets go.
    }

    static void close_inbox(const std::shared_ptr<trigger_state>& trigger) {
        if (auto inbox = trigger->inbox)
            asio::post(inbox->executor, [inbox] { inbox->channel.close(); });
    }

    void warn_split_partitions(const trigger_options& opts) {
        if (options_.sharing == sharing::per_group) return;
        if (const auto* other = triggers_.splitting_partitions_with(opts.name))
            log(log_level::warning,
                "triggers '{}' and '{}' use separate consumers in group '{}' on topic '{}': "
                "they will split its partitions, each seeing only part of the messages",
                other->options.name, opts.name, opts.consumer.get("group.id"), opts.topic);
    }

    runtime& rt_;
    const host_options options_;
    /// One lock over all parts: add() and a stop see the pools and the registry together.
    mutable std::mutex mutex_;
    consumer_pool consumers_;
    producer_pool producers_;
    trigger_registry triggers_;
    bool started_ = false;
    bool stopped_ = false;
    const std::shared_ptr<const tracing_hooks> tracing_;  // shared by every trigger; null: unset
};

}  // namespace detail

trigger_host::trigger_host(runtime& rt, host_options options)
    : core_(std::make_shared<detail::host_core>(rt, options)) {}

trigger_host::~trigger_host() {
    core_->stop_blocking();  // no-op when stop() was awaited; releases never-started consumers too
}

namespace {
void require_handler(bool present, const trigger_options& options) {
    if (!present)
        throw config_error("handler", fmt::format("trigger '{}' needs a handler", options.name));
}
}  // namespace

void trigger_host::add_trigger(trigger_options options, handler h) {
    require_handler(static_cast<bool>(h), options);
    detail::trigger_code code;
    code.plain = std::move(h);
    core_->add(std::make_shared<detail::trigger_state>(core_->next_trigger_id(), std::move(options),
                                                       std::move(code), nullptr));
}

void trigger_host::add_trigger(trigger_options options, transform_handler h) {
    require_handler(static_cast<bool>(h), options);
    detail::trigger_code code;
    code.transform = std::move(h);
    core_->add(std::make_shared<detail::trigger_state>(core_->next_trigger_id(), std::move(options),
                                                       std::move(code), nullptr));
}

void trigger_host::add_batch_trigger(trigger_options options, batch_options batching,
                                     batch_handler h) {
    require_handler(static_cast<bool>(h), options);
    if (batching.max_messages == 0)
        throw config_error(
            "batch.max_messages",
            fmt::format("trigger '{}': a batch needs max_messages >= 1", options.name));
    if (options.delivery == delivery_guarantee::exactly_once)
        throw config_error("delivery", fmt::format("trigger '{}': batch triggers support "
                                                   "at_least_once and at_most_once",
                                                   options.name));
    detail::trigger_code code;
    code.batch = std::move(h);
    code.batching = batching;
    core_->add(std::make_shared<detail::trigger_state>(core_->next_trigger_id(), std::move(options),
                                                       std::move(code), nullptr));
}

std::shared_ptr<producer> trigger_host::shared_producer(const producer_config& config) {
    return core_->producer_for(config);
}

subscription trigger_host::subscribe(trigger_options options, asio::any_io_executor executor) {
    if (!executor) executor = core_->rt().shard(0);
    const std::size_t capacity =
        std::size_t{core_->rt().shard_count()} * std::max(1u, options.max_in_flight) + 16;
    auto inbox = std::make_shared<detail::subscription_inbox>(executor, capacity, core_->rt());
    inbox->name = options.name;
    auto trigger = std::make_shared<detail::trigger_state>(
        core_->next_trigger_id(), std::move(options), detail::trigger_code{}, inbox);
    inbox->trigger = trigger;
    core_->add(trigger);
    subscription sub;
    sub.inbox_ = std::move(inbox);
    return sub;
}

asio::awaitable<void> trigger_host::remove_trigger(std::string name) {
    co_await core_->remove(std::move(name));
}

void trigger_host::start() {
    core_->start();
}
asio::awaitable<void> trigger_host::stop() {
    co_await core_->stop();
}
asio::awaitable<void> trigger_host::commit() {
    co_await core_->commit();
}
std::size_t trigger_host::consumer_count() const {
    return core_->consumer_count();
}
metrics_snapshot trigger_host::metrics() const {
    return core_->metrics();
}
health_report trigger_host::health() const {
    return core_->metrics().health;
}
bool trigger_host::pause_trigger(const std::string& name) {
    if (!core_->set_paused(name, true)) return false;
    detail::log(log_level::info, "trigger '{}' paused", name);
    return true;
}
bool trigger_host::resume_trigger(const std::string& name) {
    return core_->set_paused(name, false);
}

std::vector<trigger_stats> trigger_host::stats() const {
    return core_->stats();
}
std::vector<consumer_stats> trigger_host::consumer_stats() const {
    return core_->consumer_stats();
}
committed_offsets trigger_host::committed() const {
    return core_->committed();
}

}  // namespace kt
