// The poll thread: fetch, route to shards, track offsets, commit, rebalance, drain and close.
#include "shared_consumer.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"
#include "shard/shard_reader.hpp"
#include "shard/trigger_runner.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace kt::detail {
namespace {

std::exception_ptr kafka_exception(rd_kafka_resp_err_t err, std::string_view what) {
    return std::make_exception_ptr(
        kafka_error(make_kafka_error(err), fmt::format("{}: {}", what, rd_kafka_err2str(err))));
}

/// Completes `done` on its associated executor: posted there from the poll thread, run inline
/// only when it has none (a plain callback).
void complete(done_handler done, std::exception_ptr error = nullptr) {
    asio::dispatch(asio::append(std::move(done), error));
}

/// The same from a caller's thread (a refused command): never inline, so never inside the
/// caller's own initiation.
void post_completion(done_handler done, std::exception_ptr error = nullptr) {
    // Boost 1.81's any_completion_executor cannot be required to never block (asio::post asks
    // that), only preferred.
    auto ex = asio::prefer(asio::get_associated_executor(done), asio::execution::blocking.never);
    ex.execute([done = std::move(done), error]() mutable { std::move(done)(error); });
}

bool is_rebalance_commit_error(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
           err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR__STATE;
}

}  // namespace

shared_consumer::shared_consumer(sharing_key key, const consumer_config& config, runtime& rt,
                                 const host_options& options, delivery_guarantee delivery)
    : key_(std::move(key)),
      delivery_(delivery),
      rt_(rt),
      options_(options),
      life_(config.get("group.id")),
      ledger_(delivery),
      outage_(options.outage_recreate_after),
      probe_(config.get("group.id")) {
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
    if (!life_.advance(consumer_phase::running, fmt::format("{} shard links", links_.size())))
        return;
    open_client();
    for (unsigned i = 0; i < links_.size(); ++i)
        asio::co_spawn(rt_.shard(i), read_shard(links_[i], i), asio::detached);
    thread_ = std::thread([this] {
        name_this_thread("kt-poll");
        run();
    });
}

void shared_consumer::open_client() {
    auto client = make_client(RD_KAFKA_CONSUMER, conf_ptr(rd_kafka_conf_dup(conf_template_.get())));
    {
        std::lock_guard lock(client_mutex_);
        client_ = std::move(client);
    }
    rd_kafka_poll_set_consumer(client_.get());
    probe_.client_opened(rd_kafka_name(client_.get()));
    consumer_queue_.reset(rd_kafka_queue_get_consumer(client_.get()));
    commit_queue_.reset(rd_kafka_queue_new(client_.get()));
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), &shared_consumer::queue_event, this);
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), &shared_consumer::queue_event, this);
}

void shared_consumer::post(command c) {
    if (auto refused = inbox_.post(std::move(c)))
        reject(std::move(*refused));  // closed: nothing to do, but never leave a waiter hanging
    else
        wake();
}

void shared_consumer::reject(command c) {
    std::visit(
        [](auto& refused) {
            if constexpr (requires { refused.done; }) post_completion(std::move(refused.done));
        },
        c);
}

void shared_consumer::wake() noexcept {
    wakeup_.wake();
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
    if (!inbox_.waiting()) return;
    for (auto& c : inbox_.take()) std::visit([this](auto& each) { run(each); }, c);
}

void shared_consumer::start_attach(std::shared_ptr<trigger_state> trigger) {
    post(attach_command{std::move(trigger)});
}

void shared_consumer::run(attach_command& c) {
    const auto topic = topic_id(c.trigger->options.topic);
    routes_[topic].push_back({c.trigger});
    ledger_.add_trigger(topic, c.trigger->id);
    subscription_dirty_ = true;
}

void shared_consumer::start_detach(std::shared_ptr<trigger_state> trigger, done_handler done) {
    post(detach_command{std::move(trigger), std::move(done)});
}

void shared_consumer::run(detach_command& c) {
    auto& route = routes_[topic_id(c.trigger->options.topic)];
    auto it = std::find_if(route.begin(), route.end(),
                           [&](const route_entry& e) { return e.trigger == c.trigger; });
    if (it == route.end() || it->detaching) {
        complete(std::move(c.done));
        return;
    }
    it->detaching = true;
    // Fence: once every shard has seen this item, no earlier delivery to the trigger remains;
    // then its finished work is committed and its tracker forgotten.
    fences_.emplace(c.trigger->id, fence{static_cast<unsigned>(links_.size()), std::move(c.done)});
    for (auto& link : links_) link->push({shard_item::kind::fence, c.trigger.get(), nullptr});
    fencing_.push_back(std::move(c.trigger));
    notify_shards();
}

void shared_consumer::finish_detach(std::uint32_t removed) {
    for (std::uint32_t topic = 0; topic < routes_.size(); ++topic) {
        auto& route = routes_[topic];
        auto it = std::find_if(route.begin(), route.end(),
                               [&](const route_entry& e) { return e.trigger->id == removed; });
        if (it == route.end()) continue;
        std::vector<partition_id> ids;
        for (const auto& [id, state] : partitions_)
            if (id.first == topic) ids.push_back(id);
        // Its queued messages were dropped, so this commits no further than its first unfinished
        // one: what it did not handle is redelivered, never skipped.
        commit_sync(&ids);
        route.erase(it);
        ledger_.remove_trigger(topic, removed);
        for (const auto& id : ids) maybe_resume(id, partitions_[id]);
    }
    subscription_dirty_ = true;
}

void shared_consumer::start_commit(done_handler done) {
    if (!life_.reached(consumer_phase::running)) {
        post_completion(std::move(done));
        return;
    }
    post(commit_command{std::move(done)});
}

void shared_consumer::run(commit_command& c) {
    drain_completions();
    send_commit(std::move(c.done));
}

void shared_consumer::start_stop(done_handler done) {
    if (!life_.reached(consumer_phase::running)) {
        // Never started: drop the queued commands (they hold the triggers, which hold us).
        auto dropped = inbox_.close();
        life_.advance(consumer_phase::closed, "stopped before it started");
        post_completion(std::move(done));
        return;
    }
    post(stop_command{std::move(done)});
}

void shared_consumer::run(stop_command& c) {
    stop_waiters_.push_back(std::move(c.done));
    if (!life_.advance(consumer_phase::draining,
                       fmt::format("stop: in-flight handlers get up to {} ms",
                                   options_.drain_timeout.count())))
        return;
    stop_deadline_ = steady::now() + options_.drain_timeout;
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (!rd_kafka_assignment(client_.get(), &assigned)) {
        partition_list_ptr owner(assigned);
        rd_kafka_pause_partitions(client_.get(), assigned);
    }
}

consumer_stats shared_consumer::stats() const {
    return probe_.stats();
}

committed_offsets shared_consumer::committed() const {
    return ledger_.acknowledged();
}

// ---- poll thread -------------------------------------------------------------------------

void shared_consumer::run() {
    next_commit_ = steady::now() + options_.commit_interval;
    while (turn()) {
    }
}

// One turn of the poll thread. The order matters:
//  1. commands first, so what the caller asked for (attach, detach, commit, stop) shapes this turn;
//  2. client health (fatal error, outage) before anything uses the client;
//  3. the subscription once per command batch, so triggers added together cause one join;
//  4. completions before commits, so a commit carries everything finished so far;
//  5. at-most-once holds, then the stop (drained, or past its deadline: cancel, final commit,
//     close) or the periodic commit;
//  6. commit answers, then fetch: routing last, so the rings get this turn's messages and the
//     shards are woken once for all of them;
//  7. sleep only when nothing was fetched: 1 ms while work is in flight (completions are read
//     each turn), 10 ms when idle (queue events and commands wake it earlier).
// Returns false once the consumer is closed.
bool shared_consumer::turn() {
    run_commands();
    if (!stopping()) {
        char reason[512] = "";
        if (rd_kafka_fatal_error(client_.get(), reason, sizeof reason))
            recreate(fmt::format("fatal consumer error ({})", reason));
        check_outage();
    }
    if (steady::now() >= next_partition_view_) publish_partitions();
    if (subscription_dirty_ && !stopping()) resubscribe();
    drain_completions();
    flush_pending();
    if (!stopping() && hold_.commit_due(steady::now())) send_hold_commit();
    if (stopping()) {
        const bool done = ledger_.idle() && !hold_.in_flight();
        if (done || steady::now() >= stop_deadline_) {
            if (!done) cancel_runners();
            if (final_commit_settled()) {
                finish_stop();
                return false;
            }
        }
    } else if (steady::now() >= next_commit_) {
        send_commit({});
        next_commit_ = steady::now() + options_.commit_interval;
    }
    rd_kafka_queue_poll_callback(commit_queue_.get(), 0);

    const std::size_t got = poll_messages();
    notify_shards();
    if (got == 0) {
        bool busy = paused_count_ > 0 || stopping();
        for (auto& link : links_) busy |= link->backed_up();
        if (!busy) busy = !ledger_.idle();
        wakeup_.wait(busy ? 1ms : 10ms);
    }
    return true;
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
    if (stopping()) return got;
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
        const auto held = hold_.hold(part->first, raw->offset, message_ptr(raw));
        if (!state.paused && held > route.front().trigger->options.max_backlog)
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
    auto& ledger = *state.ledger;
    ledger.released(raw->offset + 1);
    auto* data = new message_data(raw, static_cast<std::uint32_t>(receivers), topic,
                                  ledger.generation(), live_messages_.get());
    for (std::size_t i = 0; i < route.size(); ++i) {
        const auto& entry = route[i];
        if (entry.detaching) continue;
        const auto backlog = ledger.delivered(entry.trigger->id, raw->offset, i);
        links_[state.shard]->push({shard_item::kind::deliver, entry.trigger.get(), data});
        if (!state.paused && backlog > entry.trigger->options.max_backlog) set_paused(id, true);
    }
}

partition_list_ptr shared_consumer::partition_list(const std::vector<commit_entry>& entries) const {
    partition_list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(entries.size())));
    for (const auto& e : entries)
        rd_kafka_topic_partition_list_add(list.get(), topics_[e.partition.first].c_str(),
                                          e.partition.second)
            ->offset = e.offset;
    return list;
}

std::vector<commit_entry> shared_consumer::commit_entries(
    const rd_kafka_topic_partition_list_t* list) const {
    std::vector<commit_entry> entries;
    for (int i = 0; i < list->cnt; ++i) {
        const auto& p = list->elems[i];
        auto topic = topic_ids_.find(p.topic);
        if (p.err || topic == topic_ids_.end()) continue;
        entries.push_back({{topic->second, p.partition}, p.offset});
    }
    return entries;
}

void shared_consumer::send_hold_commit() {
    auto list = partition_list(hold_.to_commit());
    auto op = std::make_unique<pending_commit>(pending_commit::kind::hold, done_handler{});
    if (auto err = rd_kafka_commit_queue(client_.get(), list.get(), commit_queue_.get(),
                                         &shared_consumer::commit_trampoline, op.get())) {
        log(log_level::warning, "group '{}': at-most-once commit failed: {}", group_,
            rd_kafka_err2str(err));
        hold_.commit_failed(steady::now());
        return;
    }
    pending_commits_.emplace(op.get(), std::move(op));
    hold_.commit_sent();
}

void shared_consumer::on_hold_committed(rd_kafka_resp_err_t err,
                                        const rd_kafka_topic_partition_list_t* offsets) {
    if (err || !offsets) {
        log(is_rebalance_commit_error(err) ? log_level::debug : log_level::warning,
            "group '{}': at-most-once commit failed: {}; retrying", group_, rd_kafka_err2str(err));
        hold_.commit_failed(steady::now());
        return;
    }
    hold_.committed(commit_entries(offsets), [this](const partition_id& id, message_ptr held) {
        if (auto part = partitions_.find(id); part != partitions_.end())
            dispatch(held.release(), id.first, id, part->second);
    });
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
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) brokers_down();
    log(log_level::warning, "group '{}': consume error on '{}': {}", group_, topic,
        rd_kafka_message_errstr(raw));
}

void shared_consumer::drain_completions() {
    for (auto& link : links_)
        link->drain_completions([this](const completion& c) { on_completion(c); });
}

void shared_consumer::on_completion(const completion& c) {
    if (c.what == completion::kind::revoke_done) {
        if (auto it = revokes_pending_.find({c.topic_id, c.partition});
            it != revokes_pending_.end() && it->second > 0)
            --it->second;
        return;
    }
    if (c.what == completion::kind::fence_done) {
        auto it = fences_.find(c.trigger_id);
        if (it == fences_.end() || --it->second.shards_left > 0) return;
        auto done = std::move(it->second.done);
        fences_.erase(it);
        finish_detach(c.trigger_id);
        std::erase_if(fencing_, [&](const auto& t) { return t->id == c.trigger_id; });
        complete(std::move(done));
        return;
    }
    auto part = partitions_.find({c.topic_id, c.partition});
    if (part == partitions_.end()) return;  // revoked: fenced
    if (part->second.ledger->completed(c.generation, c.trigger_id, c.offset) && part->second.paused)
        maybe_resume(part->first, part->second);
}

void shared_consumer::maybe_resume(const partition_id& id, partition_state& state) {
    if (!state.paused || stopping()) return;
    const auto& route = routes_[id.first];
    for (std::size_t i = 0; i < route.size(); ++i)
        if (state.ledger->backlog(route[i].trigger->id, i) >
            route[i].trigger->options.max_backlog / 2)
            return;
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
    for (auto& link : links_) link->flush();
}

void shared_consumer::notify_shards() {
    for (auto& link : links_) link->notify();
}

void shared_consumer::send_commit(done_handler done) {
    // A requested commit resends everything, so its waiter resumes only after an acknowledgement
    // that covers every finished offset (a periodic commit may still be in flight).
    const auto entries = ledger_.to_commit(nullptr, static_cast<bool>(done));
    if (entries.empty()) {
        if (done) complete(std::move(done));
        return;
    }
    ledger_.sent(entries);
    auto list = partition_list(entries);
    if (!done) {  // periodic: nobody waits, no state
        rd_kafka_commit_queue(client_.get(), list.get(), commit_queue_.get(),
                              &shared_consumer::commit_trampoline, nullptr);
        return;
    }
    auto op = std::make_unique<pending_commit>(pending_commit::kind::requested, std::move(done));
    if (auto err = rd_kafka_commit_queue(client_.get(), list.get(), commit_queue_.get(),
                                         &shared_consumer::commit_trampoline, op.get())) {
        complete(std::move(op->done), kafka_exception(err, "commit"));
        return;
    }
    pending_commits_.emplace(op.get(), std::move(op));
}

void shared_consumer::commit_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                        rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    auto* self = static_cast<shared_consumer*>(rd_kafka_opaque(rk));
    // committed() reports what the broker acknowledged, nothing a refused commit only asked for.
    if (offsets && !err) self->record_committed(offsets);
    if (!err) self->broker_reached();
    std::unique_ptr<pending_commit> op;  // null for a periodic commit
    if (opaque) {
        auto node = self->pending_commits_.extract(static_cast<const pending_commit*>(opaque));
        if (!node) return;  // already failed (the client was replaced)
        op = std::move(node.mapped());
    }
    if (op && op->what == pending_commit::kind::hold) {
        self->on_hold_committed(err, offsets);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        // A commit lost to a rebalance is retried on the next interval; never a handler failure.
        self->ledger_.refused_all();
        log(is_rebalance_commit_error(err) ? log_level::debug : log_level::warning,
            "group '{}': commit failed: {}", self->group_, rd_kafka_err2str(err));
    }
    if (op) complete(std::move(op->done), err ? kafka_exception(err, "commit") : nullptr);
}

rd_kafka_resp_err_t shared_consumer::commit_sync(const std::vector<partition_id>* only) {
    const auto entries = ledger_.to_commit(only, false);
    if (entries.empty()) return RD_KAFKA_RESP_ERR_NO_ERROR;
    ledger_.sent(entries);
    auto list = partition_list(entries);
    auto err = rd_kafka_commit(client_.get(), list.get(), 0);
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
    for (int i = 0; i < offsets->cnt; ++i) {
        const auto& p = offsets->elems[i];
        if (p.err == RD_KAFKA_RESP_ERR_NO_ERROR)
            ledger_.acknowledge(p.topic, p.partition, p.offset);
    }
}

void shared_consumer::rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                           rd_kafka_topic_partition_list_t* partitions, void*) {
    auto* self = static_cast<shared_consumer*>(rd_kafka_opaque(rk));
    const auto started = steady::now();
    self->on_rebalance(err, partitions);
    self->probe_.rebalanced(steady::now() - started);
    self->next_partition_view_ = steady::now();  // show the new assignment soon
}

void shared_consumer::on_rebalance(rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* partitions) {
    auto* rk = client_.get();
    awaiting_rebalance_ = false;
    broker_reached();  // the coordinator answered
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
        if (stopping()) rd_kafka_pause_partitions(rk, partitions);
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
        ledger_.clear();
        hold_.reset();
        probe_.assigned(0);
        paused_count_ = 0;
    }
}

void shared_consumer::assign_partitions(rd_kafka_topic_partition_list_t* partitions) {
    resume_lost_positions(partitions);
    for (int i = 0; i < partitions->cnt; ++i) {
        const auto& p = partitions->elems[i];
        const auto topic = topic_id(p.topic);
        const partition_id id{topic, p.partition};
        partition_state state;
        state.shard = shard_of(p.topic, p.partition, static_cast<unsigned>(links_.size()));
        std::vector<std::uint32_t> triggers;
        for (const auto& entry : routes_[topic]) triggers.push_back(entry.trigger->id);
        // Resumed after a loss (p.offset set): that position is complete, so it is committable.
        state.ledger =
            &ledger_.assign(id, ++next_generation_, triggers, std::max<std::int64_t>(p.offset, -1));
        if (auto* queue = rd_kafka_queue_get_partition(client_.get(), p.topic, p.partition))
            state.queue = std::make_unique<partition_queue>(queue, this);
        partitions_[id] = std::move(state);
    }
    probe_.assigned(partitions_.size());
    std::vector<partition_id> ids;
    for (int i = 0; i < partitions->cnt; ++i)
        ids.emplace_back(topic_id(partitions->elems[i].topic), partitions->elems[i].partition);
    notify_listeners(rebalance_event::assigned, ids);
}

void shared_consumer::notify_listeners(rebalance_event event,
                                       const std::vector<partition_id>& ids) {
    auto running = std::make_shared<in_flight>();
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
            running->enter();
            auto run = [listener, partitions, trigger = entry.trigger]() -> asio::awaitable<void> {
                try {
                    co_await listener(partitions);
                } catch (const std::exception& e) {
                    log(log_level::error, "trigger '{}': rebalance listener failed: {}",
                        trigger->options.name, e.what());
                }
            };
            asio::co_spawn(rt_.shard(0), std::move(run),
                           [running, weak = weak_from_this()](std::exception_ptr) {
                               running->leave();
                               if (auto self = weak.lock()) self->wake();
                           });
        }
    }
    if (!running->wait_idle(steady::now() + options_.revoke_drain_timeout,
                            [this] { wakeup_.wait(1ms); }))
        log(log_level::warning, "group '{}': rebalance listeners still running after {} ms", group_,
            options_.revoke_drain_timeout.count());
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
            links_[part->second.shard]->push({shard_item::kind::revoke, entry.trigger.get(),
                                              nullptr, id.second, part->second.ledger->generation(),
                                              id.first});
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
        const auto deadline = started + (stopping() ? 0ms : options_.revoke_drain_timeout);
        while (!revokes_drained() && steady::now() < deadline) {
            drain_completions();
            flush_pending();
            notify_shards();
            if (!revokes_drained()) std::this_thread::sleep_for(1ms);
        }
        if (!revokes_drained()) {
            if (!stopping())  // a stop already drained up to drain_timeout
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
            if (auto position = ledger_.committable(id))
                lost_positions_[id] = {*position, steady::now() + 30s};
    }
    revokes_pending_.clear();
    for (const auto& id : ids) {
        if (auto it = partitions_.find(id); it != partitions_.end() && it->second.paused)
            --paused_count_;
        partitions_.erase(id);
        ledger_.revoke(id);
        hold_.forget(id);
    }
    probe_.assigned(partitions_.size());
}

void shared_consumer::cancel_partition_handlers() {
    for (const auto& [id, left] : revokes_pending_) {
        if (left == 0) continue;
        auto part = partitions_.find(id);
        if (part == partitions_.end()) continue;
        for (const auto& entry : routes_[id.first])
            links_[part->second.shard]->push(
                {shard_item::kind::cancel_partition, entry.trigger.get(), nullptr, id.second, 0});
    }
    flush_pending();
    notify_shards();
}

bool shared_consumer::revokes_drained() const {
    return std::all_of(revokes_pending_.begin(), revokes_pending_.end(),
                       [](const auto& entry) { return entry.second == 0; });
}

void shared_consumer::cancel_runners() {
    if (!life_.advance(consumer_phase::cancelling)) return;
    log(log_level::warning, "group '{}': cancelling handlers still running after {} ms", group_,
        options_.drain_timeout.count());
    // Deliveries still waiting behind a full ring would only be dropped by the cancelled runners.
    for (auto& link : links_) link->drop_pending_deliveries();
    for (auto& route : routes_) {
        for (auto& entry : route) {
            for (auto& link : links_)
                link->push({shard_item::kind::cancel_all, entry.trigger.get(), nullptr});
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
    for (auto& [key, op] : std::exchange(pending_commits_, {}))
        if (op->what == pending_commit::kind::requested)
            complete(std::move(op->done), kafka_exception(err, "commit"));
}

bool shared_consumer::release_messages() {
    // Once finish_stop closed the links nothing more goes to the shards (they may be gone).
    const bool links_open = !links_.front()->poll_side_closed();
    // Items not handed to a shard yet still hold references: the shards never read them now.
    for (auto& link : links_) link->drop_pending_deliveries();
    return live_messages_->wait_idle(steady::now() + 5s, [&] {
        if (links_open) {  // the runners report dropped and cancelled work meanwhile
            drain_completions();
            flush_pending();
            notify_shards();
        }
        std::this_thread::sleep_for(1ms);
    });
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
    probe_.recovering(reason);
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
            live_messages_ = std::make_unique<in_flight>();
        } else {
            // A fenced member cannot leave its group: destroy without the consumer close.
            rd_kafka_destroy_flags(client_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        }
    }
    open_client();
    awaiting_rebalance_ = false;
    hold_.reset();
    subscribed_.clear();
    subscription_dirty_ = true;  // the poll loop subscribes the new client to the same topics
    probe_.recreated();
    // Recovering until the new client's statistics show a broker up.
    if (options_.statistics_interval.count() <= 0 && !outage_.in_outage()) probe_.recovered();
    publish_partitions();
    log(log_level::warning, "group '{}': consumer recreated in {} ms; rejoining the group", group_,
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count());
}

void shared_consumer::check_outage() {
    const auto down_for = outage_.due(steady::now());
    if (!down_for) return;
    recreate(fmt::format("no broker reachable for {} s",
                         std::chrono::duration_cast<std::chrono::seconds>(*down_for).count()));
    outage_.recreated(steady::now());
}

void shared_consumer::brokers_down() {
    if (outage_.down(steady::now())) probe_.recovering("no broker reachable");
}

void shared_consumer::broker_reached() {
    outage_.reached();
    probe_.recovered();
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
    } else {
        if (!parsed->brokers.empty() && outage_.down(steady::now()))
            probe_.recovering("no broker reachable");
        else
            probe_.recovery_reason("no broker reachable");
    }
    probe_.statistics(std::move(*parsed));
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
        for (std::size_t i = 0; i < route.size(); ++i) {
            p.backlog = state.ledger->backlog(route[i].trigger->id, i);
            view.emplace_back(route[i].trigger->id, p);
        }
    }
    std::vector<std::string> topics;
    for (std::size_t i = 0; i < topics_.size(); ++i)
        if (!routes_[i].empty()) topics.push_back(topics_[i]);
    probe_.publish(std::move(view), std::move(topics));
}

consumer_view shared_consumer::metrics() const {
    return probe_.view();
}

void shared_consumer::finish_stop() {
    // Control items (cancellations, revocations) still behind a full ring reach their shard
    // before it closes; a shard that reads nothing for a second (a handler blocking its thread)
    // gets none.
    const auto flush_deadline = steady::now() + 1s;
    auto backed_up = [this] {
        return std::any_of(links_.begin(), links_.end(),
                           [](const auto& l) { return l->backed_up(); });
    };
    while (backed_up() && steady::now() < flush_deadline) {
        flush_pending();
        notify_shards();
        if (backed_up()) std::this_thread::sleep_for(1ms);
    }
    life_.advance(consumer_phase::closing);
    for (auto& link : links_) link->close_poll_side();
    rd_kafka_consumer_close(client_.get());
    // The partition queues and held messages go before the client.
    partitions_.clear();
    ledger_.clear();
    hold_.reset();
    const bool released = release_messages();
    auto late = inbox_.close();
    rd_kafka_queue_poll_callback(commit_queue_.get(), 0);  // answers that came in meanwhile
    fail_commit_waiters(RD_KAFKA_RESP_ERR__DESTROY);
    close_queues();
    {
        std::lock_guard lock(client_mutex_);
        if (!released) {
            log(log_level::error,
                "group '{}': {} message(s) still referenced after close (kt::message must not "
                "outlive its trigger_host); leaking the client rather than blocking",
                group_, live_messages_->count());
            (void)client_.release();
            (void)
                live_messages_.release();  // leaked with the client: the messages still count on it
        } else {
            client_.reset();
        }
    }
    life_.advance(consumer_phase::closed);
    for (auto& [id, f] : std::exchange(fences_, {})) complete(std::move(f.done));
    fencing_.clear();
    routes_.clear();
    for (auto& waiter : std::exchange(stop_waiters_, {})) complete(std::move(waiter));
    for (auto& c : late) reject(std::move(c));
}

}  // namespace kt::detail
