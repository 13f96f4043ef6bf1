// trigger_host: the consumer pool (sharing keys, reference counts) and the awaitable API.
#include <kt/trigger_host.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>

#include "host/trigger_validation.hpp"
#include "log.hpp"
#include "monitoring.hpp"
#include "producer_state.hpp"
#include "shared_consumer.hpp"
#include "shard/trigger_runner.hpp"

namespace asio = boost::asio;

namespace kt {
namespace detail {

class host_core : public std::enable_shared_from_this<host_core> {
  public:
    host_core(runtime& rt, host_options options) : rt_(rt), options_(options) {}

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
        auto key =
            sharing_key::of(opts.consumer, options_.sharing, opts.topic, opts.name, opts.delivery);
        if (!trigger->inbox && opts.dead_letter.enabled) {
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
        std::shared_ptr<shared_consumer> consumer;
        bool start_now = false;
        {
            std::lock_guard lock(mutex_);
            if (stopped_) throw std::logic_error("trigger_host is stopped");
            if (triggers_.count(opts.name))
                throw config_error("name", fmt::format("duplicate trigger name '{}'", opts.name));
            auto& entry = pool_[key];
            if (!entry.consumer) {
                try {
                    entry.consumer = std::make_shared<shared_consumer>(key, opts.consumer, rt_,
                                                                       options_, opts.delivery);
                } catch (...) {
                    pool_.erase(key);
                    throw;
                }
            }
            ++entry.references;
            consumer = entry.consumer;
            trigger->bind(rt_, consumer);
            triggers_[opts.name] = {trigger, key};
            warn_split_partitions(opts);
            start_now = started_;
        }
        consumer->attach(trigger);
        if (start_now) consumer->start();
    }

    asio::awaitable<void> remove(std::string name) {
        std::shared_ptr<trigger_state> trigger;
        sharing_key key;
        {
            std::lock_guard lock(mutex_);
            auto it = triggers_.find(name);
            if (it == triggers_.end())
                throw std::invalid_argument(fmt::format("no trigger named '{}'", name));
            trigger = it->second.trigger;
            key = it->second.key;
            triggers_.erase(it);
        }
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
            auto it = pool_.find(key);
            if (it != pool_.end() && --it->second.references == 0) {
                pool_.erase(it);
                last = true;
            }
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
            for (auto& [key, entry] : pool_) to_start.push_back(entry.consumer);
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
        for (auto& trigger : triggers) {
            close_inbox(trigger);
            retire_workers(trigger);
        }
        release_producers();
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
        for (auto& trigger : triggers) {
            close_inbox(trigger);
            retire_workers(trigger);
        }
        release_producers();
    }

    asio::awaitable<void> commit() {
        std::vector<std::shared_ptr<shared_consumer>> consumers;
        {
            std::lock_guard lock(mutex_);
            for (auto& [key, entry] : pool_) consumers.push_back(entry.consumer);
        }
        for (auto& consumer : consumers) {
            auto commit = consumer->async_commit(asio::use_awaitable);
            co_await std::move(commit);
        }
    }

    /// Dead letters may still be written while a stop drains: `even_if_stopped`.
    std::shared_ptr<producer> producer_for(const producer_config& config,
                                           bool even_if_stopped = false) {
        auto key = sharing_key::of(config, sharing::per_group, "", "");
        std::lock_guard lock(mutex_);
        if (stopped_ && !even_if_stopped) throw std::logic_error("trigger_host is stopped");
        auto& slot = producers_[key];
        if (!slot) {
            try {
                slot = std::make_shared<producer>(config);
            } catch (...) {
                producers_.erase(key);
                throw;
            }
        }
        return slot;
    }

    std::size_t consumer_count() const {
        std::lock_guard lock(mutex_);
        return pool_.size();
    }

    std::vector<trigger_stats> stats() const {
        std::lock_guard lock(mutex_);
        std::vector<trigger_stats> all;
        for (const auto& [name, entry] : triggers_) all.push_back(entry.trigger->stats());
        for (const auto& trigger : retired_) all.push_back(trigger->stats());
        return all;
    }

    std::vector<kt::consumer_stats> consumer_stats() const {
        std::lock_guard lock(mutex_);
        std::vector<kt::consumer_stats> all;
        for (const auto& [key, entry] : pool_) {
            all.push_back(entry.consumer->stats());
            all.back().triggers = entry.references;
        }
        return all;
    }

    metrics_snapshot metrics() const {
        metrics_snapshot snapshot{.taken = std::chrono::system_clock::now(),
                                  .process_threads = process_thread_count()};
        std::lock_guard lock(mutex_);
        std::map<const shared_consumer*, consumer_view> views;
        std::map<std::string, group_load> groups;
        for (const auto& [key, entry] : pool_) {
            auto view = entry.consumer->metrics();
            view.consumer.triggers = entry.references;
            add_load(groups[view.consumer.group], view);
            snapshot.consumers.push_back(view.consumer);
            views.emplace(entry.consumer.get(), std::move(view));
        }
        auto add_trigger = [&](const trigger_state& trigger) {
            auto m = trigger.metrics();
            if (trigger.consumer) {
                m.group = trigger.consumer->group();
                if (auto v = views.find(trigger.consumer.get()); v != views.end())
                    for (const auto& [id, partition] : v->second.partitions)
                        if (id == trigger.id) m.partitions.push_back(partition);
            }
            snapshot.triggers.push_back(std::move(m));
        };
        for (const auto& [name, entry] : triggers_) add_trigger(*entry.trigger);
        for (const auto& trigger : retired_) add_trigger(*trigger);
        for (const auto& [key, producer] : producers_)
            snapshot.producers.push_back({.name = producer_access::name(*producer),
                                          .delivered = producer->delivered(),
                                          .failed = producer->failed(),
                                          .queue_depth = producer->queue_depth()});
        for (const auto& [group, load] : groups)
            snapshot.scaling.push_back(advise_scaling(load, options_.health));
        snapshot.health = assess_health(snapshot, options_.health, started_, stopped_);
        return snapshot;
    }

    bool set_paused(const std::string& name, bool paused) {
        std::shared_ptr<trigger_state> trigger;
        {
            std::lock_guard lock(mutex_);
            auto it = triggers_.find(name);
            if (it == triggers_.end()) return false;
            trigger = it->second.trigger;
        }
        if (trigger->paused.exchange(paused) == paused || paused) return true;
        log(log_level::info, "trigger '{}' resumed", name);
        for (unsigned shard = 0; shard < trigger->runners.size(); ++shard)
            asio::post(rt_.shard(shard), [trigger, shard] { trigger->runners[shard]->pump(); });
        return true;
    }

    committed_offsets committed() const {
        std::lock_guard lock(mutex_);
        committed_offsets merged;
        std::set<const shared_consumer*> seen;
        auto merge = [&](const shared_consumer& consumer) {
            if (!seen.insert(&consumer).second) return;
            for (auto& [topic, partitions] : consumer.committed())
                for (auto [partition, offset] : partitions) {
                    auto [it, inserted] = merged[topic].try_emplace(partition, offset);
                    if (!inserted) it->second = std::min(it->second, offset);
                }
        };
        for (const auto& [key, entry] : pool_) merge(*entry.consumer);
        for (const auto& consumer : closed_) merge(*consumer);
        return merged;
    }

    runtime& rt() { return rt_; }

  private:
    struct pool_entry {
        std::shared_ptr<shared_consumer> consumer;
        unsigned references = 0;
    };
    struct trigger_entry {
        std::shared_ptr<trigger_state> trigger;
        sharing_key key;
    };

    /// Producers only the pool still holds (their triggers left) are flushed and closed.
    void release_unused_producers() {
        std::vector<std::shared_ptr<producer>> unused;
        {
            std::lock_guard lock(mutex_);
            for (auto it = producers_.begin(); it != producers_.end();) {
                if (it->second.use_count() == 1) {
                    unused.push_back(std::move(it->second));
                    it = producers_.erase(it);
                } else {
                    ++it;
                }
            }
        }
    }

    /// Producers outlive the consumers (dead letters are written while draining): dropped last.
    void release_producers() {
        std::map<sharing_key, std::shared_ptr<producer>> producers;
        {
            std::lock_guard lock(mutex_);
            producers.swap(producers_);
        }
        // Triggers keep references too: each producer flushes when its last owner lets go.
    }

    std::pair<std::vector<std::shared_ptr<shared_consumer>>,
              std::vector<std::shared_ptr<trigger_state>>>
    take_all() {
        std::lock_guard lock(mutex_);
        std::vector<std::shared_ptr<shared_consumer>> consumers;
        std::vector<std::shared_ptr<trigger_state>> triggers;
        if (stopped_) return {};
        stopped_ = true;
        for (auto& [key, entry] : pool_) consumers.push_back(entry.consumer);
        for (auto& [name, entry] : triggers_) {
            triggers.push_back(entry.trigger);
            retired_.push_back(entry.trigger);  // stats stay readable after stop
        }
        closed_ = consumers;
        pool_.clear();
        triggers_.clear();
        return {consumers, triggers};
    }

    /// Parked workers keep their shard's io_context busy: they leave once the host stopped.
    void retire_workers(const std::shared_ptr<trigger_state>& trigger) {
        for (unsigned shard = 0; shard < trigger->runners.size(); ++shard)
            asio::post(rt_.shard(shard), [trigger, shard] { trigger->runners[shard]->retire(); });
    }

    static void close_inbox(const std::shared_ptr<trigger_state>& trigger) {
        if (auto inbox = trigger->inbox)
            asio::post(inbox->executor, [inbox] { inbox->channel.close(); });
    }

    void warn_split_partitions(const trigger_options& opts) {
        if (options_.sharing == sharing::per_group) return;
        const auto group = opts.consumer.get("group.id");
        for (const auto& [name, entry] : triggers_) {
            const auto& other = entry.trigger->options;
            if (name != opts.name && other.topic == opts.topic &&
                other.consumer.get("group.id") == group &&
                !(entry.key == triggers_[opts.name].key)) {
                log(log_level::warning,
                    "triggers '{}' and '{}' use separate consumers in group '{}' on topic '{}': "
                    "they will split its partitions, each seeing only part of the messages",
                    other.name, opts.name, group, opts.topic);
                return;
            }
        }
    }

    /// Adds one consumer's view to its group's load (partitions counted once per topic).
    static void add_load(group_load& load, const consumer_view& view) {
        load.group = view.consumer.group;
        load.assigned += view.consumer.assigned_partitions;
        load.lag += view.consumer.consumer_lag;
        load.consume_rate += view.consumer.consume_rate;
        load.lag_rate += view.consumer.lag_rate;
        for (const auto& topic : view.consumer.topics)
            if (auto it = view.topic_partitions.find(topic); it != view.topic_partitions.end())
                load.topic_partitions[topic] = it->second;
        load.partitions = 0;
        for (const auto& [topic, count] : load.topic_partitions) load.partitions += count;
    }

    runtime& rt_;
    const host_options options_;
    mutable std::mutex mutex_;
    std::map<sharing_key, pool_entry> pool_;
    std::map<sharing_key, std::shared_ptr<producer>> producers_;
    std::map<std::string, trigger_entry> triggers_;
    std::vector<std::shared_ptr<trigger_state>> retired_;
    std::vector<std::shared_ptr<shared_consumer>> closed_;
    bool started_ = false;
    bool stopped_ = false;
    std::uint32_t next_id_ = 0;

  public:
    std::uint32_t next_trigger_id() {
        std::lock_guard lock(mutex_);
        return next_id_++;
    }
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

// ---- subscription ----

asio::awaitable<message> subscription::next() {
    // The inbox is touched only on its executor; a co_await on dispatch() would not move this
    // coroutine there, so the receive runs as its own coroutine on the inbox's executor.
    auto inbox = inbox_;
    auto receive = [inbox]() -> asio::awaitable<message> {
        auto m = co_await inbox->channel.async_receive(asio::use_awaitable);
        co_return m;
    };
    auto m = co_await asio::co_spawn(inbox->executor, std::move(receive), asio::use_awaitable);
    co_return m;
}

void subscription::complete(const message& m) {
    auto trigger = inbox_->trigger.lock();
    if (!trigger) return;
    const auto shard = detail::shard_of(m.topic(), m.partition(), inbox_->rt->shard_count());
    asio::post(inbox_->rt->shard(shard),
               [trigger, shard, m] { trigger->runners[shard]->complete_pulled(m); });
}

asio::awaitable<void> subscription::commit() {
    auto trigger = inbox_->trigger.lock();
    if (!trigger) co_return;
    auto consumer = trigger->consumer;
    auto commit = consumer->async_commit(asio::use_awaitable);
    co_await std::move(commit);
}

const std::string& subscription::name() const noexcept {
    return inbox_->name;
}

}  // namespace kt
