// The poll thread: fetch, route to shards, track offsets, commit, rebalance, drain and close.
#include "shared_consumer.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"
#include "trigger_runner.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace kt::detail {
namespace {

/// Shard-side reader of one link: hands deliveries and fences to the trigger runners.
asio::awaitable<void> read_shard(std::shared_ptr<shard_link> link, unsigned shard) {
    auto dispatch = [shard](const shard_item& item) {
        auto& runner = *item.trigger->runners[shard];
        switch (item.what) {
            case shard_item::kind::deliver:
                runner.deliver(message(item.message));
                break;
            case shard_item::kind::fence:
                runner.close();
                break;
            case shard_item::kind::revoke:
                runner.revoke(item.topic_id, item.partition, item.generation);
                break;
            case shard_item::kind::cancel_partition:
                runner.cancel_partition(item.partition);
                break;
        }
    };
    for (;;) {
        link->to_shard.consume_all(dispatch);
        auto [ec] = co_await link->to_shard.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            link->to_shard.consume_all(dispatch);
            co_return;
        }
    }
}

std::exception_ptr kafka_exception(rd_kafka_resp_err_t err, std::string_view what) {
    return std::make_exception_ptr(
        kafka_error(make_kafka_error(err), fmt::format("{}: {}", what, rd_kafka_err2str(err))));
}

bool is_rebalance_commit_error(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
           err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR__STATE;
}

}  // namespace

shared_consumer::shared_consumer(sharing_key key, const consumer_config& config, runtime& rt,
                                 const host_options& options, delivery_guarantee delivery)
    : key_(std::move(key)), delivery_(delivery), rt_(rt), options_(options) {
    if (!config.contains("bootstrap.servers") && !config.contains("metadata.broker.list"))
        throw config_error("bootstrap.servers", "consumer config needs 'bootstrap.servers'");
    if (config.get("group.id").empty())
        throw config_error("group.id", "consumer config needs a non-empty 'group.id'");
    for (const auto& [name, value] : config.properties()) check_managed_property(name, value);

    consumer_config effective = config;
    effective.set("enable.auto.commit", "false");
    effective.set("enable.auto.offset.store", "false");
    if (!effective.contains("partition.assignment.strategy"))
        effective.set("partition.assignment.strategy", "cooperative-sticky");
    if (!effective.contains("auto.offset.reset")) effective.set("auto.offset.reset", "earliest");
    if (!effective.contains("statistics.interval.ms") && options.statistics_interval.count() > 0)
        effective.set("statistics.interval.ms",
                      std::to_string(options.statistics_interval.count()));
    conf_template_ = make_conf(effective);
    rd_kafka_conf_set_rebalance_cb(conf_template_.get(), &shared_consumer::rebalance_trampoline);
    rd_kafka_conf_set_stats_cb(conf_template_.get(), &shared_consumer::statistics_trampoline);
    rd_kafka_conf_set_opaque(conf_template_.get(), this);
    group_ = config.get("group.id");

    for (unsigned i = 0; i < rt.shard_count(); ++i)
        links_.push_back(std::make_shared<shard_link>(options.channel_capacity, rt.shard(i)));
    shard_dirty_.assign(rt.shard_count(), false);
}

shared_consumer::~shared_consumer() {
    if (thread_.joinable()) {
        if (thread_.get_id() == std::this_thread::get_id())
            thread_.detach();  // last reference dropped by the poll thread's own callback
        else
            thread_.join();
    }
}

void shared_consumer::start() {
    if (started_.exchange(true)) return;
    open_client();
    for (unsigned i = 0; i < links_.size(); ++i)
        asio::co_spawn(rt_.shard(i), read_shard(links_[i], i), asio::detached);
    thread_ = std::thread([this] {
        name_this_thread("kt-poll");
        run();
    });
    log(log_level::info, "consumer for group '{}' started ({} shard links)", group_, links_.size());
}

void shared_consumer::open_client() {
    auto client = make_client(RD_KAFKA_CONSUMER, conf_ptr(rd_kafka_conf_dup(conf_template_.get())));
    {
        std::lock_guard lock(client_mutex_);
        client_ = std::move(client);
    }
    rd_kafka_poll_set_consumer(client_.get());
    {
        std::lock_guard lock(metrics_mutex_);
        client_name_ = rd_kafka_name(client_.get());
        statistics_.reset();
        statistics_rates_ = {};
    }
    consumer_queue_.reset(rd_kafka_queue_get_consumer(client_.get()));
    commit_queue_.reset(rd_kafka_queue_new(client_.get()));
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), &shared_consumer::queue_event, this);
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), &shared_consumer::queue_event, this);
}

void shared_consumer::post_command(std::function<void()> run, std::function<void()> reject) {
    bool accepted = false;
    {
        std::lock_guard lock(commands_mutex_);
        if (!closed_) {
            commands_.push_back({std::move(run), std::move(reject)});
            has_commands_.store(true, std::memory_order_release);
            accepted = true;
        }
    }
    if (accepted)
        wake();
    else if (reject)
        reject();  // the consumer is closed: nothing to do, but never leave a waiter hanging
}

void shared_consumer::wake() noexcept {
    {
        std::lock_guard lock(wake_mutex_);
        wake_pending_ = true;
    }
    wake_cv_.notify_one();
}

void shared_consumer::wait_for_work(std::chrono::milliseconds timeout) {
    std::unique_lock lock(wake_mutex_);
    wake_cv_.wait_for(lock, timeout, [this] { return wake_pending_; });
    wake_pending_ = false;
}

void shared_consumer::queue_event(rd_kafka_t*, void* opaque) {
    static_cast<shared_consumer*>(opaque)->wake();
}

shared_consumer::partition_queue::partition_queue(rd_kafka_queue_t* q, shared_consumer* owner)
    : queue(q) {
    rd_kafka_queue_forward(queue, nullptr);
    rd_kafka_queue_cb_event_enable(queue, &shared_consumer::queue_event, owner);
}

shared_consumer::partition_queue::~partition_queue() {
    rd_kafka_queue_cb_event_enable(queue, nullptr, nullptr);
    rd_kafka_queue_destroy(queue);
}

void shared_consumer::run_commands() {
    if (!has_commands_.load(std::memory_order_acquire)) return;
    std::vector<command> batch;
    {
        std::lock_guard lock(commands_mutex_);
        batch.swap(commands_);
        has_commands_.store(false, std::memory_order_relaxed);
    }
    for (auto& c : batch) c.run();
}

void shared_consumer::attach(std::shared_ptr<trigger_state> trigger) {
    post_command([this, trigger = std::move(trigger)] {
        const auto topic = topic_id(trigger->options.topic);
        routes_[topic].push_back({trigger});
        for (auto& [id, state] : partitions_)
            if (id.first == topic) state.trackers.emplace_back();
        subscription_dirty_ = true;
    });
}

void shared_consumer::detach(std::shared_ptr<trigger_state> trigger, done_callback on_done) {
    auto done = std::make_shared<done_callback>(std::move(on_done));
    post_command(
        [this, trigger = std::move(trigger), done]() mutable {
            auto& route = routes_[topic_id(trigger->options.topic)];
            auto it = std::find_if(route.begin(), route.end(),
                                   [&](const route_entry& e) { return e.trigger == trigger; });
            if (it == route.end() || it->detaching) {
                (*done)(nullptr);
                return;
            }
            it->detaching = true;
            // Fence: once every shard has seen this item, no earlier delivery to the trigger
            // remains; then its finished work is committed and its tracker forgotten.
            fences_[trigger->id] = {static_cast<unsigned>(links_.size()), std::move(*done)};
            for (unsigned shard = 0; shard < links_.size(); ++shard) {
                auto& link = *links_[shard];
                const shard_item fence{shard_item::kind::fence, trigger.get(), nullptr};
                if (!link.pending_to_shard.empty() || !link.to_shard.try_push(fence))
                    link.pending_to_shard.push_back(fence);
                shard_dirty_[shard] = true;
            }
            fencing_.push_back(std::move(trigger));
            notify_shards();
        },
        [done] { (*done)(nullptr); });
}

void shared_consumer::finish_detach(std::uint32_t trigger_id) {
    for (std::uint32_t topic = 0; topic < routes_.size(); ++topic) {
        auto& route = routes_[topic];
        auto it = std::find_if(route.begin(), route.end(),
                               [&](const route_entry& e) { return e.trigger->id == trigger_id; });
        if (it == route.end()) continue;
        const auto index = static_cast<std::ptrdiff_t>(it - route.begin());
        std::vector<partition_id> ids;
        for (const auto& [id, state] : partitions_)
            if (id.first == topic) ids.push_back(id);
        // Its queued messages were dropped, so this commits no further than its first unfinished
        // one: what it did not handle is redelivered, never skipped.
        commit_sync(&ids);
        route.erase(it);
        for (const auto& id : ids) {
            auto& state = partitions_[id];
            state.trackers.erase(state.trackers.begin() + index);
            maybe_resume(id, state);
        }
    }
    subscription_dirty_ = true;
}

void shared_consumer::commit(done_callback done) {
    if (!started_.load()) {
        done(nullptr);
        return;
    }
    auto shared_done = std::make_shared<done_callback>(std::move(done));
    post_command(
        [this, shared_done] {
            drain_completions();
            commit_async(std::move(*shared_done));
        },
        [shared_done] { (*shared_done)(nullptr); });
}

void shared_consumer::stop(done_callback done) {
    if (!started_.load()) {
        // Never started: drop the queued commands (they hold the triggers, which hold us).
        std::vector<command> dropped;
        {
            std::lock_guard lock(commands_mutex_);
            closed_ = true;
            dropped.swap(commands_);
        }
        done(nullptr);
        return;
    }
    auto shared_done = std::make_shared<done_callback>(std::move(done));
    post_command(
        [this, shared_done] {
            stop_waiters_.push_back(std::move(*shared_done));
            if (stopping_) return;
            stopping_ = true;
            stop_deadline_ = steady::now() + options_.drain_timeout;
            rd_kafka_topic_partition_list_t* assigned = nullptr;
            if (!rd_kafka_assignment(client_.get(), &assigned)) {
                partition_list_ptr owner(assigned);
                rd_kafka_pause_partitions(client_.get(), assigned);
            }
            log(log_level::info, "consumer for group '{}' stopping: draining in-flight handlers",
                group_);
        },
        [shared_done] { (*shared_done)(nullptr); });
}

consumer_stats shared_consumer::stats() const {
    return {.group = group_,
            .assigned_partitions = assigned_count_.load(std::memory_order_relaxed),
            .rebalances = rebalances_.load(std::memory_order_relaxed),
            .recreations = recreations_.load(std::memory_order_relaxed)};
}

committed_offsets shared_consumer::committed() const {
    std::lock_guard lock(committed_mutex_);
    return committed_;
}

// ---- poll thread -------------------------------------------------------------------------

void shared_consumer::run() {
    next_commit_ = steady::now() + options_.commit_interval;
    while (!stopped_) {
        run_commands();
        if (!stopping_) {
            char reason[512] = "";
            if (rd_kafka_fatal_error(client_.get(), reason, sizeof reason))
                recreate(fmt::format("fatal consumer error ({})", reason));
            check_outage();
        }
        if (steady::now() >= next_partition_view_) publish_partitions();
        // One subscribe per command batch, so triggers added together cause one join.
        if (subscription_dirty_ && !stopping_) resubscribe();
        drain_completions();
        flush_pending();
        if (gate_dirty_ && !gate_in_flight_ && !stopping_ && steady::now() >= gate_retry_at_)
            send_gate_commit();
        if (stopping_) {
            const bool done = drained(nullptr) && !gate_in_flight_;
            if (done || steady::now() >= stop_deadline_) {
                if (!done) cancel_runners();
                if (final_commit_settled()) {
                    finish_stop();
                    break;
                }
            }
        } else if (steady::now() >= next_commit_) {
            commit_async(nullptr);
            next_commit_ = steady::now() + options_.commit_interval;
        }
        rd_kafka_queue_poll_callback(commit_queue_.get(), 0);

        const std::size_t got = poll_messages();
        notify_shards();
        if (got == 0) {
            // Completions are read on each turn: turn quickly while handlers run or ring items
            // wait, so commits, drains and held-back partitions move without delay.
            bool busy = paused_count_ > 0 || stopping_;
            for (auto& link : links_) busy |= !link->pending_to_shard.empty();
            if (!busy) busy = !drained(nullptr);
            wait_for_work(busy ? 1ms : 10ms);
        }
    }
}

std::size_t shared_consumer::poll_messages() {
    std::size_t got = 0;
    // The consumer queue carries rebalance events and errors (and messages of partitions whose
    // own queue could not be taken).
    for (int budget = 256; budget > 0; --budget) {
        rd_kafka_message_t* raw = rd_kafka_consumer_poll(client_.get(), 0);
        if (!raw) break;
        route(raw);
        ++got;
    }
    if (stopping_) return got;
    std::array<rd_kafka_message_t*, 128> batch;
    for (auto& [id, state] : partitions_) {
        if (state.paused || !state.queue) continue;
        const auto n =
            rd_kafka_consume_batch_queue(state.queue->queue, 0, batch.data(), batch.size());
        for (ssize_t i = 0; i < n; ++i) route(batch[static_cast<std::size_t>(i)]);
        if (n > 0) got += static_cast<std::size_t>(n);
    }
    return got;
}

std::uint32_t shared_consumer::topic_id(const std::string& topic) {
    auto [it, inserted] = topic_ids_.try_emplace(topic, static_cast<std::uint32_t>(topics_.size()));
    if (inserted) {
        topics_.push_back(topic);
        routes_.emplace_back();
    }
    return it->second;
}

void shared_consumer::resubscribe() {
    std::vector<std::string> wanted;
    for (std::size_t i = 0; i < topics_.size(); ++i)
        if (std::any_of(routes_[i].begin(), routes_[i].end(),
                        [](const route_entry& e) { return !e.detaching; }))
            wanted.push_back(topics_[i]);
    std::sort(wanted.begin(), wanted.end());
    if (wanted == subscribed_) {
        subscription_dirty_ = false;
        return;
    }
    // Changing the subscription while our previous change is still joining leaves a stale member
    // behind that holds partitions until its session times out: wait for that rebalance first.
    if (awaiting_rebalance_ && steady::now() < awaiting_rebalance_until_) {
        subscription_dirty_ = true;
        return;
    }
    subscription_dirty_ = false;
    subscribed_ = wanted;
    if (wanted.empty()) {
        rd_kafka_unsubscribe(client_.get());
        awaiting_rebalance_ = false;
        return;
    }
    partition_list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(wanted.size())));
    for (const auto& topic : wanted)
        rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(client_.get(), list.get())) {
        log(log_level::error, "group '{}': subscribe failed: {}", group_, rd_kafka_err2str(err));
        return;
    }
    log(log_level::info, "group '{}': subscribed to {} topic(s)", group_, wanted.size());
    awaiting_rebalance_ = true;
    awaiting_rebalance_until_ = steady::now() + 10s;
}

void shared_consumer::route(rd_kafka_message_t* raw) {
    if (raw->err) {
        handle_consume_error(raw);
        rd_kafka_message_destroy(raw);
        return;
    }
    std::uint32_t topic;
    if (auto it = topic_by_handle_.find(raw->rkt); it != topic_by_handle_.end()) {
        topic = it->second;
    } else {
        topic = topic_id(rd_kafka_topic_name(raw->rkt));
        topic_by_handle_.emplace(raw->rkt, topic);
    }
    auto& route = routes_[topic];
    auto part = partitions_.find({topic, raw->partition});
    if (route.empty() || part == partitions_.end()) {
        rd_kafka_message_destroy(raw);  // not ours any more (revoked, or trigger removed)
        return;
    }
    auto& state = part->second;
    if (delivery_ == delivery_guarantee::at_most_once) {
        // Handed out only once a commit past it is acknowledged: a crash can lose it, never
        // repeat it.
        state.gated.emplace_back(raw);
        state.gate_position = raw->offset + 1;
        gate_dirty_ = true;
        if (!state.paused && state.gated.size() > route.front().trigger->options.max_backlog)
            set_paused(part->first, true);
        return;
    }
    dispatch(raw, topic, part->first, state);
}

void shared_consumer::dispatch(rd_kafka_message_t* raw, std::uint32_t topic, const partition_id& id,
                               partition_state& state) {
    auto& route = routes_[topic];
    const auto receivers = std::count_if(route.begin(), route.end(),
                                         [](const route_entry& e) { return !e.detaching; });
    if (receivers == 0) {
        rd_kafka_message_destroy(raw);
        return;
    }
    state.released_position = raw->offset + 1;
    auto* data = new message_data(raw, static_cast<std::uint32_t>(receivers), topic,
                                  state.generation, live_messages_.get());
    for (std::size_t i = 0; i < route.size(); ++i) {
        if (route[i].detaching) continue;
        state.trackers[i].delivered(raw->offset);
        push_to_shard(state.shard, {shard_item::kind::deliver, route[i].trigger.get(), data});
        if (!state.paused && state.trackers[i].backlog() > route[i].trigger->options.max_backlog)
            set_paused(id, true);
    }
}

void shared_consumer::send_gate_commit() {
    partition_list_ptr list(rd_kafka_topic_partition_list_new(8));
    for (const auto& [id, state] : partitions_)
        if (!state.gated.empty())
            rd_kafka_topic_partition_list_add(list.get(), topics_[id.first].c_str(), id.second)
                ->offset = state.gate_position;
    gate_dirty_ = false;
    if (list->cnt == 0) return;
    if (auto err = rd_kafka_commit_queue(client_.get(), list.get(), commit_queue_.get(),
                                         &shared_consumer::commit_trampoline, &gate_marker_)) {
        log(log_level::warning, "group '{}': at-most-once commit failed: {}", group_,
            rd_kafka_err2str(err));
        gate_dirty_ = true;
        gate_retry_at_ = steady::now() + 100ms;
        return;
    }
    gate_in_flight_ = true;
}

void shared_consumer::on_gate_committed(rd_kafka_resp_err_t err,
                                        const rd_kafka_topic_partition_list_t* offsets) {
    gate_in_flight_ = false;
    if (err || !offsets) {
        log(is_rebalance_commit_error(err) ? log_level::debug : log_level::warning,
            "group '{}': at-most-once commit failed: {}; retrying", group_, rd_kafka_err2str(err));
        gate_dirty_ = true;
        gate_retry_at_ = steady::now() + 100ms;
        return;
    }
    for (int i = 0; i < offsets->cnt; ++i) {
        const auto& p = offsets->elems[i];
        auto topic = topic_ids_.find(p.topic);
        if (p.err || topic == topic_ids_.end()) continue;
        const partition_id id{topic->second, p.partition};
        auto part = partitions_.find(id);
        if (part == partitions_.end()) continue;  // revoked meanwhile: its messages are gone
        auto& gated = part->second.gated;
        while (!gated.empty() && gated.front()->offset < p.offset) {
            dispatch(gated.front().release(), id.first, id, part->second);
            gated.pop_front();
        }
    }
    for (const auto& [id, state] : partitions_) gate_dirty_ |= !state.gated.empty();
}

void shared_consumer::handle_consume_error(const rd_kafka_message_t* raw) {
    const auto err = raw->err;
    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    const std::string topic = raw->rkt ? rd_kafka_topic_name(raw->rkt) : "";
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        if (std::find(warned_missing_.begin(), warned_missing_.end(), topic) ==
            warned_missing_.end()) {
            warned_missing_.push_back(topic);
            log(log_level::warning,
                "group '{}': topic '{}' does not exist (yet); its triggers wait until it is "
                "created",
                group_, topic);
        }
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) return;  // the poll loop recreates the client
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !all_down_since_) {
        all_down_since_ = steady::now();
        recovering_.store(true, std::memory_order_relaxed);
        std::lock_guard lock(metrics_mutex_);
        recovery_reason_ = "no broker reachable";
    }
    log(log_level::warning, "group '{}': consume error on '{}': {}", group_, topic,
        rd_kafka_message_errstr(raw));
}

void shared_consumer::drain_completions() {
    for (auto& link : links_)
        link->to_poll.consume_all([this](const completion& c) { on_completion(c); });
}

void shared_consumer::on_completion(const completion& c) {
    if (c.what == completion::kind::revoke_done) {
        if (auto it = revokes_pending_.find({c.topic_id, c.partition});
            it != revokes_pending_.end() && it->second > 0)
            --it->second;
        return;
    }
    if (c.what == completion::kind::fence_done) {
        auto fence = fences_.find(c.trigger_id);
        if (fence == fences_.end() || --fence->second.first > 0) return;
        auto done = std::move(fence->second.second);
        fences_.erase(fence);
        finish_detach(c.trigger_id);
        std::erase_if(fencing_, [&](const auto& t) { return t->id == c.trigger_id; });
        done(nullptr);
        return;
    }
    auto part = partitions_.find({c.topic_id, c.partition});
    if (part == partitions_.end() || part->second.generation != c.generation) return;  // fenced
    auto& route = routes_[c.topic_id];
    for (std::size_t i = 0; i < route.size(); ++i) {
        if (route[i].trigger->id != c.trigger_id) continue;
        part->second.trackers[i].completed(c.offset);
        if (part->second.paused) maybe_resume(part->first, part->second);
        return;
    }
}

void shared_consumer::maybe_resume(const partition_id& id, partition_state& state) {
    if (!state.paused || stopping_) return;
    const auto& route = routes_[id.first];
    for (std::size_t i = 0; i < route.size(); ++i)
        if (state.trackers[i].backlog() > route[i].trigger->options.max_backlog / 2) return;
    set_paused(id, false);
}

void shared_consumer::set_paused(const partition_id& id, bool paused) {
    auto& state = partitions_[id];
    if (state.paused == paused) return;
    paused_count_ += paused ? 1 : -1;
    state.paused = paused;
    log(log_level::debug, "group '{}': {} {}[{}]", group_, paused ? "holding back" : "resumed",
        topics_[id.first], id.second);
}

void shared_consumer::flush_pending() {
    for (unsigned shard = 0; shard < links_.size(); ++shard) {
        auto& link = *links_[shard];
        while (!link.pending_to_shard.empty() &&
               link.to_shard.try_push(link.pending_to_shard.front())) {
            link.pending_to_shard.pop_front();
            shard_dirty_[shard] = true;
        }
    }
}

void shared_consumer::notify_shards() {
    for (unsigned shard = 0; shard < links_.size(); ++shard) {
        if (!shard_dirty_[shard]) continue;
        shard_dirty_[shard] = false;
        links_[shard]->to_shard.notify();
    }
}

std::optional<std::int64_t> shared_consumer::committable(const partition_state& state) const {
    if (delivery_ == delivery_guarantee::at_most_once) {
        // Everything handed out is committed already; never commit past what was handed out.
        if (state.released_position < 0) return std::nullopt;
        return state.released_position;
    }
    std::optional<std::int64_t> lowest;
    for (const auto& tracker : state.trackers)
        if (auto offset = tracker.committable(); offset && (!lowest || *offset < *lowest))
            lowest = offset;
    return lowest;
}

partition_list_ptr shared_consumer::committable_offsets(const std::vector<partition_id>* only,
                                                        bool all) const {
    partition_list_ptr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions_.size())));
    auto add = [&](const partition_id& id, const partition_state& state) {
        auto offset = committable(state);
        if (!offset || (!all && *offset <= state.commit_sent)) return;
        rd_kafka_topic_partition_list_add(list.get(), topics_[id.first].c_str(), id.second)
            ->offset = *offset;
    };
    if (only) {
        for (const auto& id : *only)
            if (auto it = partitions_.find(id); it != partitions_.end()) add(it->first, it->second);
    } else {
        for (const auto& [id, state] : partitions_) add(id, state);
    }
    return list;
}

void shared_consumer::commit_async(done_callback done) {
    // An explicit commit resends everything, so its waiter resumes only after an acknowledgement
    // that covers every finished offset (a periodic commit may still be in flight).
    auto list = committable_offsets(nullptr, static_cast<bool>(done));
    if (list->cnt == 0) {
        if (done) done(nullptr);
        return;
    }
    mark_sent(list.get());
    auto* waiter = done ? new done_callback(std::move(done)) : nullptr;
    if (auto err = rd_kafka_commit_queue(client_.get(), list.get(), commit_queue_.get(),
                                         &shared_consumer::commit_trampoline, waiter)) {
        if (waiter) {
            (*waiter)(kafka_exception(err, "commit"));
            delete waiter;
        }
    } else if (waiter) {
        commit_waiters_.insert(waiter);
    }
}

void shared_consumer::mark_sent(const rd_kafka_topic_partition_list_t* list, bool sent) {
    for (int i = 0; i < list->cnt; ++i) {
        const auto& p = list->elems[i];
        if (auto it = partitions_.find({topic_ids_.at(p.topic), p.partition});
            it != partitions_.end())
            it->second.commit_sent = sent ? p.offset : -1;
    }
}

void shared_consumer::commit_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                        rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    auto* self = static_cast<shared_consumer*>(rd_kafka_opaque(rk));
    // committed() reports what the broker acknowledged, nothing a refused commit only asked for.
    if (offsets && !err) self->record_committed(offsets);
    if (!err) self->broker_reached();
    if (opaque == &self->gate_marker_) {
        self->on_gate_committed(err, offsets);
        return;
    }
    std::unique_ptr<done_callback> waiter(static_cast<done_callback*>(opaque));
    self->commit_waiters_.erase(waiter.get());
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        // A commit lost to a rebalance is retried on the next interval; never a handler failure.
        for (auto& [id, state] : self->partitions_) state.commit_sent = -1;
        log(is_rebalance_commit_error(err) ? log_level::debug : log_level::warning,
            "group '{}': commit failed: {}", self->group_, rd_kafka_err2str(err));
    }
    if (waiter && *waiter) (*waiter)(err ? kafka_exception(err, "commit") : nullptr);
}

rd_kafka_resp_err_t shared_consumer::commit_sync(const std::vector<partition_id>* only) {
    auto list = committable_offsets(only, false);
    if (list->cnt == 0) return RD_KAFKA_RESP_ERR_NO_ERROR;
    mark_sent(list.get());
    auto err = rd_kafka_commit(client_.get(), list.get(), 0);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        log(is_rebalance_commit_error(err) ? log_level::info : log_level::warning,
            "group '{}': commit failed: {}", group_, rd_kafka_err2str(err));
        mark_sent(list.get(), false);  // the next commit (the final one on stop) sends them again
    } else {
        record_committed(list.get());
    }
    return err;
}

bool shared_consumer::final_commit_settled() {
    if (steady::now() < final_commit_retry_at_) return false;
    const auto err = commit_sync(nullptr);
    // A rebalance under way (another member joining, our own last subscription change) refuses
    // commits until it completes. The partitions stay ours meanwhile, so the loop keeps polling
    // (which completes it) and commits again, until the stop deadline.
    const bool rebalancing = err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
                             err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION;
    if (rebalancing && steady::now() < stop_deadline_) {
        final_commit_retry_at_ = steady::now() + 100ms;
        return false;
    }
    if (err)
        log(log_level::warning,
            "group '{}': the final commit was refused ({}); the next owner repeats the work "
            "completed since the last commit",
            group_, rd_kafka_err2str(err));
    return true;
}

void shared_consumer::record_committed(const rd_kafka_topic_partition_list_t* offsets) {
    std::lock_guard lock(committed_mutex_);
    for (int i = 0; i < offsets->cnt; ++i) {
        const auto& p = offsets->elems[i];
        if (p.err == RD_KAFKA_RESP_ERR_NO_ERROR && p.offset >= 0) {
            auto& slot = committed_[p.topic][p.partition];
            slot = std::max(slot, p.offset);
        }
    }
}

void shared_consumer::rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                           rd_kafka_topic_partition_list_t* partitions, void*) {
    auto* self = static_cast<shared_consumer*>(rd_kafka_opaque(rk));
    const auto started = steady::now();
    self->on_rebalance(err, partitions);
    const auto took = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - started).count());
    self->rebalance_ns_total_.fetch_add(took, std::memory_order_relaxed);
    self->last_rebalance_ns_.store(took, std::memory_order_relaxed);
    self->next_partition_view_ = steady::now();  // show the new assignment soon
}

void shared_consumer::on_rebalance(rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* partitions) {
    auto* rk = client_.get();
    awaiting_rebalance_ = false;
    broker_reached();  // the coordinator answered
    rebalances_.fetch_add(1, std::memory_order_relaxed);
    const char* protocol = rd_kafka_rebalance_protocol(rk);
    const bool cooperative = protocol && std::strcmp(protocol, "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign_partitions(partitions);  // takes the partition queues before fetching starts
        if (cooperative) {
            if (auto* error = rd_kafka_incremental_assign(rk, partitions)) {
                log(log_level::error, "group '{}': assign failed: {}", group_,
                    rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
            }
        } else {
            rd_kafka_assign(rk, partitions);
        }
        if (stopping_) rd_kafka_pause_partitions(rk, partitions);
        log(log_level::info, "group '{}': assigned {} partition(s)", group_, partitions->cnt);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        const bool lost = rd_kafka_assignment_lost(rk);
        revoke_partitions(partitions, lost);
        if (cooperative) {
            if (auto* error = rd_kafka_incremental_unassign(rk, partitions)) {
                log(log_level::error, "group '{}': unassign failed: {}", group_,
                    rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
            }
        } else {
            rd_kafka_assign(rk, nullptr);
        }
        if (lost)
            log(log_level::info, "group '{}': lost {} partition(s)", group_, partitions->cnt);
        else
            log(last_revoke_commit_ ? log_level::warning : log_level::info,
                "group '{}': revoked {} partition(s); drained and {} in {} ms", group_,
                partitions->cnt,
                last_revoke_commit_
                    ? fmt::format("the commit refused ({}): the next owner repeats their "
                                  "uncommitted work",
                                  rd_kafka_err2str(last_revoke_commit_))
                    : std::string("committed"),
                last_revoke_ms_);
    } else {
        log(log_level::error, "group '{}': rebalance error: {}", group_, rd_kafka_err2str(err));
        rd_kafka_assign(rk, nullptr);
        partitions_.clear();
        assigned_count_.store(0, std::memory_order_relaxed);
        paused_count_ = 0;
    }
}

void shared_consumer::assign_partitions(rd_kafka_topic_partition_list_t* partitions) {
    resume_lost_positions(partitions);
    for (int i = 0; i < partitions->cnt; ++i) {
        const auto& p = partitions->elems[i];
        const auto topic = topic_id(p.topic);
        partition_state state;
        state.generation = ++next_generation_;
        state.shard = shard_of(p.topic, p.partition, static_cast<unsigned>(links_.size()));
        state.trackers.resize(routes_[topic].size());
        if (p.offset >= 0) {  // resumed after a loss: that position is complete, commit it
            for (auto& tracker : state.trackers) tracker.start_at(p.offset);
            state.gate_position = state.released_position = p.offset;
        }
        if (auto* queue = rd_kafka_queue_get_partition(client_.get(), p.topic, p.partition))
            state.queue = std::make_unique<partition_queue>(queue, this);
        partitions_[{topic, p.partition}] = std::move(state);
    }
    assigned_count_.store(partitions_.size(), std::memory_order_relaxed);
    std::vector<partition_id> ids;
    for (int i = 0; i < partitions->cnt; ++i)
        ids.emplace_back(topic_id(partitions->elems[i].topic), partitions->elems[i].partition);
    notify_listeners(rebalance_event::assigned, ids);
}

void shared_consumer::notify_listeners(rebalance_event event,
                                       const std::vector<partition_id>& ids) {
    struct waiter {
        std::atomic<int> left{0};
    };
    auto done = std::make_shared<waiter>();
    for (std::uint32_t topic = 0; topic < routes_.size(); ++topic) {
        std::vector<std::int32_t> partitions;
        for (const auto& id : ids)
            if (id.first == topic) partitions.push_back(id.second);
        if (partitions.empty()) continue;
        for (const auto& entry : routes_[topic]) {
            const auto& listeners = entry.trigger->options.listeners;
            const auto& listener = event == rebalance_event::assigned  ? listeners.on_assigned
                                   : event == rebalance_event::revoked ? listeners.on_revoked
                                                                       : listeners.on_lost;
            if (!listener) continue;
            done->left.fetch_add(1, std::memory_order_relaxed);
            auto run = [listener, partitions, trigger = entry.trigger]() -> asio::awaitable<void> {
                try {
                    co_await listener(partitions);
                } catch (const std::exception& e) {
                    log(log_level::error, "trigger '{}': rebalance listener failed: {}",
                        trigger->options.name, e.what());
                }
            };
            asio::co_spawn(rt_.shard(0), std::move(run),
                           [done, weak = weak_from_this()](std::exception_ptr) {
                               done->left.fetch_sub(1, std::memory_order_release);
                               if (auto self = weak.lock()) self->wake();
                           });
        }
    }
    const auto deadline = steady::now() + options_.revoke_drain_timeout;
    while (done->left.load(std::memory_order_acquire) > 0) {
        if (steady::now() >= deadline) {
            log(log_level::warning, "group '{}': rebalance listeners still running after {} ms",
                group_, options_.revoke_drain_timeout.count());
            return;
        }
        wait_for_work(1ms);
    }
}

void shared_consumer::resume_lost_positions(rd_kafka_topic_partition_list_t* partitions) {
    std::erase_if(lost_positions_, [](const auto& e) { return e.second.second < steady::now(); });
    if (lost_positions_.empty()) return;
    partition_list_ptr returning(rd_kafka_topic_partition_list_new(partitions->cnt));
    for (int i = 0; i < partitions->cnt; ++i) {
        const auto& p = partitions->elems[i];
        if (lost_positions_.count({topic_id(p.topic), p.partition}))
            rd_kafka_topic_partition_list_add(returning.get(), p.topic, p.partition);
    }
    if (returning->cnt == 0) return;
    // Another member may have committed further meanwhile: start at the later of the two.
    if (rd_kafka_committed(client_.get(), returning.get(), 5000)) return;
    for (int i = 0; i < partitions->cnt; ++i) {
        auto& p = partitions->elems[i];
        const partition_id id{topic_id(p.topic), p.partition};
        auto remembered = lost_positions_.find(id);
        if (remembered == lost_positions_.end()) continue;
        const auto* broker =
            rd_kafka_topic_partition_list_find(returning.get(), p.topic, p.partition);
        p.offset = std::max(remembered->second.first, broker ? broker->offset : -1);
        lost_positions_.erase(remembered);
        log(log_level::info, "group '{}': {}[{}] came back after a loss; resuming at {}", group_,
            p.topic, p.partition, p.offset);
    }
}

void shared_consumer::revoke_partitions(const rd_kafka_topic_partition_list_t* partitions,
                                        bool lost) {
    std::vector<partition_id> ids;
    for (int i = 0; i < partitions->cnt; ++i)
        ids.emplace_back(topic_id(partitions->elems[i].topic), partitions->elems[i].partition);
    // Stop routing: the runners drop what they queued for these partitions and report once no
    // handler of them runs any more.
    revokes_pending_.clear();
    for (const auto& id : ids) {
        auto part = partitions_.find(id);
        if (part == partitions_.end()) continue;
        for (const auto& entry : routes_[id.first]) {
            push_to_shard(part->second.shard,
                          {shard_item::kind::revoke, entry.trigger.get(), nullptr, id.second,
                           part->second.generation, id.first});
            ++revokes_pending_[id];
        }
    }
    flush_pending();
    notify_shards();
    if (!lost) {
        // Drain-then-commit: in-flight handlers get up to revoke_drain_timeout, then they are
        // cancelled (never committed); what finished is committed, the rest goes to the next
        // owner (at-least-once) and late completions are fenced by the generation.
        const auto started = steady::now();
        const auto deadline = started + (stopping_ ? 0ms : options_.revoke_drain_timeout);
        while (!revokes_drained() && steady::now() < deadline) {
            drain_completions();
            flush_pending();
            notify_shards();
            if (!revokes_drained()) std::this_thread::sleep_for(1ms);
        }
        if (!revokes_drained()) {
            if (!stopping_)  // a stop already drained up to drain_timeout
                log(log_level::warning,
                    "group '{}': cancelling handlers of revoked partitions still running after "
                    "{} ms",
                    group_, options_.revoke_drain_timeout.count());
            cancel_partition_handlers();
        }
        notify_listeners(rebalance_event::revoked, ids);
        last_revoke_commit_ = commit_sync(&ids);
        last_revoke_ms_ =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count();
    } else {
        // Lost: their results could not be committed any more, so running handlers stop now.
        cancel_partition_handlers();
        notify_listeners(rebalance_event::lost, ids);
        // Nothing may be committed, but what we completed stays completed: if the partition comes
        // straight back to us (a fenced member rejoining, a session that timed out while the
        // group had no one else), it restarts there instead of at the older commit.
        for (const auto& id : ids)
            if (auto it = partitions_.find(id); it != partitions_.end())
                if (auto position = committable(it->second))
                    lost_positions_[id] = {*position, steady::now() + 30s};
    }
    revokes_pending_.clear();
    for (const auto& id : ids) {
        if (auto it = partitions_.find(id); it != partitions_.end() && it->second.paused)
            --paused_count_;
        partitions_.erase(id);
    }
    assigned_count_.store(partitions_.size(), std::memory_order_relaxed);
}

void shared_consumer::cancel_partition_handlers() {
    for (const auto& [id, left] : revokes_pending_) {
        if (left == 0) continue;
        auto part = partitions_.find(id);
        if (part == partitions_.end()) continue;
        for (const auto& entry : routes_[id.first])
            push_to_shard(part->second.shard, {shard_item::kind::cancel_partition,
                                               entry.trigger.get(), nullptr, id.second, 0});
    }
    flush_pending();
    notify_shards();
}

bool shared_consumer::revokes_drained() const {
    return std::all_of(revokes_pending_.begin(), revokes_pending_.end(),
                       [](const auto& entry) { return entry.second == 0; });
}

void shared_consumer::push_to_shard(unsigned shard, const shard_item& item) {
    auto& link = *links_[shard];
    // Closed by finish_stop: the runners are drained or cancelled, and the host may destroy them
    // as soon as the stop completes (the revocation during rd_kafka_consumer_close lands here).
    if (link.poll_side_gone.load(std::memory_order_relaxed)) return;
    if (!link.pending_to_shard.empty() || !link.to_shard.try_push(item))
        link.pending_to_shard.push_back(item);
    shard_dirty_[shard] = true;
}

bool shared_consumer::drained(const std::vector<partition_id>* only) const {
    auto idle = [](const partition_state& state) {
        return std::all_of(state.trackers.begin(), state.trackers.end(),
                           [](const offset_tracker& t) { return t.idle(); });
    };
    if (only) {
        for (const auto& id : *only)
            if (auto it = partitions_.find(id); it != partitions_.end() && !idle(it->second))
                return false;
        return true;
    }
    return std::all_of(partitions_.begin(), partitions_.end(),
                       [&](const auto& entry) { return idle(entry.second); });
}

void shared_consumer::cancel_runners() {
    if (cancelled_) return;
    cancelled_ = true;
    log(log_level::warning, "group '{}': cancelling handlers still running after {} ms", group_,
        options_.drain_timeout.count());
    for (auto& route : routes_) {
        for (auto& entry : route) {
            for (unsigned shard = 0; shard < links_.size(); ++shard)
                asio::post(rt_.shard(shard),
                           [t = entry.trigger, shard] { t->runners[shard]->cancel(); });
            if (auto inbox = entry.trigger->inbox) {
                asio::post(inbox->executor, [inbox] {
                    inbox->channel.close();
                    inbox->channel.reset();
                });
            }
        }
    }
}

void shared_consumer::fail_commit_waiters(rd_kafka_resp_err_t err) {
    for (auto* waiter : std::exchange(commit_waiters_, {})) {
        (*waiter)(kafka_exception(err, "commit"));
        delete waiter;
    }
}

bool shared_consumer::release_messages() {
    // Once finish_stop closed the links nothing more goes to the shards (they may be gone).
    const bool links_open = !links_.front()->poll_side_gone.load(std::memory_order_relaxed);
    // Items not handed to a shard yet still hold references: the shards never read them now.
    for (auto& link : links_) {
        for (auto& item : link->pending_to_shard)
            if (item.what == shard_item::kind::deliver) message{item.message};  // drops the ref
        if (links_open)
            std::erase_if(link->pending_to_shard, [](const shard_item& item) {
                return item.what == shard_item::kind::deliver;
            });
        else
            link->pending_to_shard.clear();
    }
    const auto deadline = steady::now() + 5s;
    while (live_messages_->load(std::memory_order_acquire) > 0 && steady::now() < deadline) {
        if (links_open) {  // the runners report dropped and cancelled work meanwhile
            drain_completions();
            flush_pending();
            notify_shards();
        }
        std::this_thread::sleep_for(1ms);
    }
    return live_messages_->load(std::memory_order_acquire) == 0;
}

void shared_consumer::close_queues() {
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), nullptr, nullptr);
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), nullptr, nullptr);
    commit_queue_.reset();
    consumer_queue_.reset();
}

void shared_consumer::recreate(const std::string& reason) {
    log(log_level::error, "group '{}': {}; {} partition(s) lost, recreating the consumer", group_,
        reason, partitions_.size());
    recovering_.store(true, std::memory_order_relaxed);
    {
        std::lock_guard lock(metrics_mutex_);
        recovery_reason_ = reason;
    }
    const auto started = steady::now();
    // Its partitions are lost: this member cannot commit for them any more.
    if (!partitions_.empty()) {
        partition_list_ptr all(
            rd_kafka_topic_partition_list_new(static_cast<int>(partitions_.size())));
        for (const auto& [id, state] : partitions_)
            rd_kafka_topic_partition_list_add(all.get(), topics_[id.first].c_str(), id.second);
        revoke_partitions(all.get(), true);
    }
    const bool released = release_messages();
    close_queues();  // its pending commits never answer now: fail their waiters
    fail_commit_waiters(RD_KAFKA_RESP_ERR__FATAL);
    topic_by_handle_.clear();  // topic handles belong to the old client
    {
        std::lock_guard lock(client_mutex_);
        if (!released) {
            log(log_level::warning,
                "group '{}': the failed consumer is not destroyed (handlers still reference its "
                "messages)",
                group_);
            (void)client_.release();
            (void)live_messages_.release();  // leaked with the client, as in finish_stop
            live_messages_ = std::make_unique<std::atomic<std::int64_t>>(0);
        } else {
            // A fenced member cannot leave its group: destroy without the consumer close.
            rd_kafka_destroy_flags(client_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        }
    }
    open_client();
    awaiting_rebalance_ = false;
    gate_dirty_ = gate_in_flight_ = false;
    subscribed_.clear();
    subscription_dirty_ = true;  // the poll loop subscribes the new client to the same topics
    recreations_.fetch_add(1, std::memory_order_relaxed);
    // Recovering until the new client's statistics show a broker up.
    if (options_.statistics_interval.count() <= 0 && !all_down_since_)
        recovering_.store(false, std::memory_order_relaxed);
    publish_partitions();
    log(log_level::warning, "group '{}': consumer recreated in {} ms; rejoining the group", group_,
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count());
}

void shared_consumer::check_outage() {
    const auto after = options_.outage_recreate_after;
    if (!all_down_since_ || after.count() <= 0) return;
    const auto limit = after * (1u << std::min(outage_recreations_in_row_, 4u));
    const auto down_for = steady::now() - *all_down_since_;
    if (down_for < limit) return;
    ++outage_recreations_in_row_;
    recreate(fmt::format("no broker reachable for {} s",
                         std::chrono::duration_cast<std::chrono::seconds>(down_for).count()));
    all_down_since_ = steady::now();  // still an outage until a broker is reported up
}

void shared_consumer::broker_reached() {
    all_down_since_.reset();
    outage_recreations_in_row_ = 0;
    recovering_.store(false, std::memory_order_relaxed);
}

int shared_consumer::statistics_trampoline(rd_kafka_t*, char* json, std::size_t length,
                                           void* opaque) {
    static_cast<shared_consumer*>(opaque)->on_statistics({json, length});
    return 0;  // librdkafka frees the JSON
}

void shared_consumer::on_statistics(std::string_view json) {
    auto parsed = parse_statistics(json);
    if (!parsed) return;
    if (parsed->any_broker_up) {
        broker_reached();
    } else if (!all_down_since_ && !parsed->brokers.empty()) {
        all_down_since_ = steady::now();
        recovering_.store(true, std::memory_order_relaxed);
    }
    std::lock_guard lock(metrics_mutex_);
    if (!parsed->any_broker_up) recovery_reason_ = "no broker reachable";
    if (statistics_) statistics_rates_ = rates_between(*statistics_, *parsed);
    statistics_ = std::move(parsed);
}

void shared_consumer::publish_partitions() {
    next_partition_view_ = steady::now() + 500ms;
    std::vector<std::pair<std::uint32_t, partition_metrics>> view;
    const auto acknowledged = committed();
    for (const auto& [id, state] : partitions_) {
        const auto& topic = topics_[id.first];
        partition_metrics p{.topic = topic, .partition = id.second, .paused = state.paused};
        if (auto t = acknowledged.find(topic); t != acknowledged.end())
            if (auto c = t->second.find(id.second); c != t->second.end()) p.committed = c->second;
        std::int64_t low = -1, high = -1;
        if (client_ &&
            !rd_kafka_get_watermark_offsets(client_.get(), topic.c_str(), id.second, &low, &high) &&
            high >= 0)
            p.high_watermark = high;
        if (p.high_watermark >= 0 && p.committed >= 0)
            p.lag = std::max<std::int64_t>(0, p.high_watermark - p.committed);
        const auto& route = routes_[id.first];
        for (std::size_t i = 0; i < route.size() && i < state.trackers.size(); ++i) {
            p.backlog = state.trackers[i].backlog();
            view.emplace_back(route[i].trigger->id, p);
        }
    }
    std::vector<std::string> topics;
    for (std::size_t i = 0; i < topics_.size(); ++i)
        if (!routes_[i].empty()) topics.push_back(topics_[i]);
    std::lock_guard lock(metrics_mutex_);
    partition_view_ = std::move(view);
    topics_view_ = std::move(topics);
}

shared_consumer::metrics_view shared_consumer::metrics() const {
    const auto counters = stats();
    metrics_view view;
    auto& m = view.consumer;
    m.group = group_;
    m.assigned_partitions = counters.assigned_partitions;
    m.rebalances = counters.rebalances;
    m.recreations = counters.recreations;
    m.rebalance_seconds_total =
        static_cast<double>(rebalance_ns_total_.load(std::memory_order_relaxed)) / 1e9;
    m.last_rebalance_seconds =
        static_cast<double>(last_rebalance_ns_.load(std::memory_order_relaxed)) / 1e9;
    m.recovering = recovering_.load(std::memory_order_relaxed);
    std::lock_guard lock(metrics_mutex_);
    m.client = client_name_;
    m.topics = topics_view_;
    if (m.recovering) m.recovery_reason = recovery_reason_;
    m.threads = 2;  // the poll thread and librdkafka's main thread, plus one per broker below
    if (statistics_) {
        m.threads += static_cast<unsigned>(statistics_->broker_threads);
        m.consumer_lag = statistics_->consumer_lag;
        m.rxmsgs = statistics_->rxmsgs;
        m.fetchq_cnt = statistics_->fetchq_cnt;
        m.group_state = statistics_->join_state;
        m.brokers = statistics_->brokers;
        m.consume_rate = statistics_rates_.consume_rate;
        m.lag_rate = statistics_rates_.lag_rate;
        view.topic_partitions = statistics_->topic_partitions;
    }
    view.partitions = partition_view_;
    return view;
}

void shared_consumer::finish_stop() {
    for (auto& link : links_) {
        link->poll_side_gone.store(true, std::memory_order_release);
        link->to_shard.close();
    }
    rd_kafka_consumer_close(client_.get());
    partitions_.clear();  // releases the partition queues (and gated messages) before the client
    const bool released = release_messages();
    std::vector<command> late;
    {
        std::lock_guard lock(commands_mutex_);
        closed_ = true;
        late.swap(commands_);
    }
    rd_kafka_queue_poll_callback(commit_queue_.get(), 0);  // answers that came in meanwhile
    fail_commit_waiters(RD_KAFKA_RESP_ERR__DESTROY);
    close_queues();
    {
        std::lock_guard lock(client_mutex_);
        if (!released) {
            log(log_level::error,
                "group '{}': {} message(s) still referenced after close (kt::message must not "
                "outlive its trigger_host); leaking the client rather than blocking",
                group_, live_messages_->load());
            (void)client_.release();
            (void)
                live_messages_.release();  // leaked with the client: the messages still count on it
        } else {
            client_.reset();
        }
    }
    stopped_ = true;
    log(log_level::info, "consumer for group '{}' closed", group_);
    for (auto& [id, fence] : fences_) fence.second(nullptr);
    fences_.clear();
    fencing_.clear();
    routes_.clear();
    auto waiters = std::move(stop_waiters_);
    for (auto& waiter : waiters) waiter(nullptr);
    for (auto& c : late)
        if (c.reject) c.reject();
}

}  // namespace kt::detail
