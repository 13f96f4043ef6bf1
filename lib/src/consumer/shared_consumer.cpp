// The poll thread: one documented turn() that sequences the consumer's parts, the commands other
// threads send it, and the consumer's ends (recreation after a failure, the graceful stop).
#include "consumer/shared_consumer.hpp"

#include <algorithm>
#include <array>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "consumer/consumer_conf.hpp"
#include "log.hpp"
#include "shard/shard_reader.hpp"
#include "shard/trigger_state.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace kt::detail {
namespace {

std::vector<std::shared_ptr<shard_link>> make_links(runtime& rt, std::size_t capacity) {
    std::vector<std::shared_ptr<shard_link>> links;
    for (unsigned i = 0; i < rt.shard_count(); ++i)
        links.push_back(std::make_shared<shard_link>(capacity, rt.shard(i)));
    return links;
}

}  // namespace

shared_consumer::shared_consumer(sharing_key key, const consumer_config& config, runtime& rt,
                                 const host_options& options, delivery_guarantee delivery)
    : key_(std::move(key)),
      delivery_(delivery),
      rt_(rt),
      options_(options),
      group_(config.get("group.id")),
      life_(group_),
      links_(make_links(rt, options.channel_capacity)),
      client_(group_, consumer_conf(config, options), *this),
      routes_(group_, links_),
      ledger_(delivery, options.completion_map),
      probe_(group_),
      commits_(group_, client_, routes_, ledger_, probe_),
      rebalance_(group_, {client_, routes_, ledger_, hold_, commits_, links_, *this}, rt, options_,
                 wakeup_),
      outage_(options.outage_recreate_after),
      errors_(group_) {
    if (options.completion_map) probe_.map_budget(ledger_.map_budget());
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
    std::lock_guard lock(start_mutex_);  // adding a trigger and the host's start may race here
    if (life_.reached(consumer_phase::running)) return;
    // Before the phase moves: when librdkafka refuses the client (an unreadable ssl.ca.location,
    // say), the consumer stays created, so its stop completes at once instead of queueing a
    // command for a poll thread that never started.
    client_.open();
    if (!life_.advance(consumer_phase::running, fmt::format("{} shard links", links_.size()))) {
        client_.end(client_end::destroy);  // stopped meanwhile
        return;
    }
    probe_.client_opened(client_.name());
    for (unsigned i = 0; i < links_.size(); ++i)
        asio::co_spawn(rt_.shard(i), read_shard(links_[i], i), asio::detached);
    thread_ = std::thread([this] {
        name_this_thread("kt-poll");
        run();
    });
}

// ---- commands: any thread -> poll thread --------------------------------------------------

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

void shared_consumer::run_commands() {
    if (!inbox_.waiting()) return;
    for (auto& c : inbox_.take()) std::visit([this](auto& each) { run(each); }, c);
}

void shared_consumer::start_attach(std::shared_ptr<trigger_state> trigger) {
    post(attach_command{std::move(trigger)});
}

void shared_consumer::run(attach_command& c) {
    const auto trigger = ledger_trigger_of(*c.trigger);
    for (const auto topic : routes_.add(std::move(c.trigger))) ledger_.add_trigger(topic, trigger);
    subscription_.changed();
}

void shared_consumer::start_detach(std::shared_ptr<trigger_state> trigger, done_handler done) {
    post(detach_command{std::move(trigger), std::move(done)});
}

void shared_consumer::run(detach_command& c) {
    if (!routes_.start_detaching(c.trigger)) {
        complete(std::move(c.done));
        return;
    }
    // Fence: once every shard has seen this item, no earlier delivery to the trigger remains;
    // then its finished work is committed and its tracker forgotten.
    for (auto& link : links_) link->push({shard_item::kind::fence, c.trigger.get(), nullptr});
    for (auto& link : links_) link->notify();
    const auto id = c.trigger->id;
    fences_.start(id, std::move(c.trigger), static_cast<unsigned>(links_.size()),
                  std::move(c.done));
}

void shared_consumer::finish_detach(std::uint32_t removed) {
    for (std::uint32_t topic = 0; topic < routes_.topic_count(); ++topic) {
        const auto& route = routes_.route(topic);
        if (std::none_of(route.begin(), route.end(),
                         [&](const route_entry& e) { return e.trigger->id == removed; }))
            continue;
        const auto ids = routes_.partitions_of(topic);
        // Its queued messages were dropped, so this commits no further than its first unfinished
        // one: what it did not handle is redelivered, never skipped.
        commits_.commit_now(&ids);
        routes_.remove(topic, removed);
        ledger_.remove_trigger(topic, removed);
        for (const auto& id : ids)
            routes_.maybe_resume(id, *routes_.find_partition(id), stopping());
    }
    routes_.remove_pattern(removed);
    subscription_.changed();
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
    commits_.send(std::move(c.done));
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
    client_.pause_assignment();
}

consumer_stats shared_consumer::stats() const {
    return probe_.stats();
}

committed_offsets shared_consumer::committed() const {
    return ledger_.acknowledged();
}

consumer_view shared_consumer::metrics() const {
    return probe_.view();
}

// ---- the poll loop ------------------------------------------------------------------------

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
//     close) or the next commit (commit_interval passed or commit_after completions, one at a
//     time);
//  6. commit answers, then fetch: routing last, so the rings get this turn's messages and the
//     shards are woken once for all of them;
//  7. sleep only when nothing was fetched: 1 ms while work is in flight (completions are read
//     each turn), 10 ms when idle (queue events and commands wake it earlier).
// Returns false once the consumer is closed.
bool shared_consumer::turn() {
    run_commands();
    if (!stopping()) {
        if (auto reason = client_.fatal_error())
            recreate(fmt::format("fatal consumer error ({})", *reason));
        check_outage();
    }
    if (steady::now() >= next_partition_view_) publish_partitions();
    if (subscription_.due() && !stopping()) resubscribe();
    drain_completions();
    for (auto& link : links_) link->flush();
    if (!stopping() && hold_.commit_due(steady::now())) send_hold_commit();
    if (stopping()) {
        const bool done = ledger_.idle() && !hold_.in_flight();
        if (done || steady::now() >= stop_deadline_) {
            if (!done) cancel_runners();
            if (commits_.final_commit_settled(stop_deadline_)) {
                finish_stop();
                return false;
            }
        }
    } else if (commit_due(steady::now())) {
        commits_.send({});
        routes_.resume_ready(false);  // held back for a map too large: it may fit again
        completed_since_commit_ = 0;
        next_commit_ = steady::now() + options_.commit_interval;
    }
    client_.serve_commit_answers();

    const std::size_t got = poll_messages();
    for (auto& link : links_) link->notify();
    if (got == 0) {
        records_->trim_when_idle();
        bool busy = stopping() || routes_.any_paused() || !ledger_.idle();
        for (auto& link : links_) busy |= link->backed_up();
        auto sleep = busy ? 1ms : 10ms;
        if (const auto due = routes_.next_due())  // a held retry record
            sleep = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(*due - steady::now()),
                               0ms, sleep);
        wakeup_->wait(sleep);
    }
    probe_.turned(steady::now());
    return true;
}

std::size_t shared_consumer::poll_messages() {
    std::size_t got = 0;
    fetched_at_ = steady::now();
    // The consumer queue carries rebalance events and errors (and messages of partitions whose
    // own queue could not be taken).
    for (int budget = 256; budget > 0; --budget) {
        rd_kafka_message_t* raw = client_.poll();
        if (!raw) break;
        route(raw);
        ++got;
    }
    if (stopping()) return got;
    routes_.release_due(fetched_at_, *records_);
    std::array<rd_kafka_message_t*, 128> batch;
    for (auto& [id, state] : routes_.partitions()) {
        if (state.paused || !state.queue) continue;
        const auto n = state.queue->consume(batch);
        // A partition's own queue holds its messages only: no lookups per message.
        for (std::size_t i = 0; i < n; ++i)
            if (batch[i]->err || batch[i]->partition != id.second)
                route(batch[i]);
            else
                route(batch[i], id, &state);
        got += n;
    }
    return got;
}

void shared_consumer::route(rd_kafka_message_t* raw) {
    if (raw->err) {
        if (errors_.on_error(*raw) == consume_errors::meaning::brokers_down) brokers_down();
        rd_kafka_message_destroy(raw);
        return;
    }
    const partition_id id{routes_.topic_of(raw->rkt), raw->partition};
    route(raw, id, routes_.find_partition(id));
}

void shared_consumer::route(rd_kafka_message_t* raw, const partition_id& id,
                            partition_state* state) {
    const auto& route = routes_.route(id.first);
    if (route.empty() || !state) {
        rd_kafka_message_destroy(raw);  // not ours any more (revoked, or trigger removed)
        return;
    }
    state->next_offset = raw->offset + 1;
    state->waiting_since = fetched_at_;
    if (delivery_ == delivery_guarantee::at_most_once) {
        // Handed out only once a commit past it is acknowledged: a crash can lose it, never
        // repeat it.
        const auto held = hold_.hold(id, raw->offset, message_ptr(raw));
        if (!state->paused && held > route.front().trigger->options.max_backlog)
            routes_.set_paused(id, *state, true);
        return;
    }
    routes_.dispatch(raw, id, *state, *records_);
}

void shared_consumer::resubscribe() {
    auto topics = subscription_.next(routes_.wanted_topics(), steady::now());
    if (!topics) return;
    if (auto err = client_.subscribe(*topics); err && !topics->empty()) {
        log(log_level::error, "group '{}': subscribe failed: {}", group_, rd_kafka_err2str(err));
        subscription_.rebalanced();  // none is coming
        return;
    }
    if (!topics->empty()) {
        const auto patterns = std::count_if(topics->begin(), topics->end(),
                                            [](const auto& t) { return t.starts_with('^'); });
        log(log_level::info, "group '{}': subscribed to {} topic(s){}", group_,
            topics->size() - patterns,
            patterns > 0 ? fmt::format(" and {} topic pattern(s)", patterns) : "");
    }
}

void shared_consumer::send_hold_commit() {
    if (commits_.send_hold(hold_.to_commit()))
        hold_.commit_sent();
    else
        hold_.commit_failed(steady::now());
}

void shared_consumer::drain_completions() {
    for (auto& link : links_)
        link->drain_completions([this](const completion& c) { on_completion(c); });
}

bool shared_consumer::commit_due(steady::time_point now) const {
    const bool due = now >= next_commit_ || (options_.commit_after > 0 &&
                                             completed_since_commit_ >= options_.commit_after);
    return due && !commits_.in_flight();  // one at a time: a slow broker is not flooded
}

void shared_consumer::on_completion(const completion& c) {
    if (c.what == completion::kind::revoke_done) {
        rebalance_.revoke_reported({c.topic_id, c.partition});
        return;
    }
    if (c.what == completion::kind::fence_done) {
        if (auto done = fences_.confirmed(c.trigger_id)) {
            finish_detach(c.trigger_id);
            complete(std::move(*done));
        }
        return;
    }
    completed_since_commit_ += routes_.completed(c, stopping());
}

void shared_consumer::pump_shards() {
    drain_completions();
    flush_and_notify(links_);
}

// ---- what the client reports ----------------------------------------------------------------

void shared_consumer::on_rebalance(rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* partitions) {
    const auto started = steady::now();
    // Its waits are bounded: read_committed (≤ 5 s; under exactly_once up to
    // exactly_once_read_timeout), the revoke drain and the listeners.
    probe_.blocking_until(started + 2 * options_.revoke_drain_timeout + 5s +
                          (delivery_ == delivery_guarantee::exactly_once
                               ? std::chrono::seconds(rebalance::exactly_once_read_timeout)
                               : 0s));
    subscription_.rebalanced();
    // The coordinator answered, unless librdkafka gave the partitions up as lost on its own
    // (KIP-848: heartbeats unanswered for the session timeout), which an outage also causes.
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || !client_.assignment_lost()) broker_reached();
    rebalance_.on_event(err, partitions, stopping());
    probe_.assigned(routes_.partitions().size());
    probe_.rebalanced(steady::now() - started);
    next_partition_view_ = steady::now();  // show the new assignment soon
}

void shared_consumer::on_commit(rd_kafka_resp_err_t err,
                                const rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    if (!err) broker_reached();
    auto held = commits_.on_answer(err, offsets, opaque);
    if (!held) return;
    if (!held->acknowledged) {
        hold_.commit_failed(steady::now());
        return;
    }
    hold_.committed(held->entries, [this](const partition_id& id, message_ptr message) {
        if (auto* state = routes_.find_partition(id))
            routes_.dispatch(message.release(), id, *state, *records_);
    });
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
    const auto now = steady::now();
    next_partition_view_ = now + 500ms;
    const auto acknowledged = committed();
    probe_.publish(routes_.partition_view(acknowledged, client_), routes_.routed_topics());
    auto stall = routes_.longest_stall(now, acknowledged, client_);
    probe_.delivery_stalled(stall.longest, std::move(stall.partition));
    if (options_.completion_map) learn_map_budget();
}

void shared_consumer::learn_map_budget() {
    if (auto limit = client_.take_offset_metadata_limit()) {
        ledger_.set_map_budget(commit_ledger::map_budget_for(*limit));
        probe_.map_budget(ledger_.map_budget());
        log(log_level::debug,
            "group '{}': offset.metadata.max.bytes {}: completion maps up to {} bytes", group_,
            *limit, ledger_.map_budget());
    }
}

// ---- failures: outage and recreation ------------------------------------------------------

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

void shared_consumer::recreate(const std::string& reason) {
    log(log_level::error, "group '{}': {}; {} partition(s) lost, recreating the consumer", group_,
        reason, routes_.partitions().size());
    probe_.recovering(reason);
    const auto started = steady::now();
    // Its partitions are lost: this member cannot commit for them any more.
    rebalance_.lose_all(stopping());
    probe_.assigned(0);
    const bool released = release_messages();
    commits_.fail_waiters(RD_KAFKA_RESP_ERR__FATAL);  // its pending commits never answer now
    routes_.forget_handles();                         // topic handles belong to the old client
    if (!released)
        log(log_level::warning,
            "group '{}': the failed consumer is not destroyed (handlers still reference its "
            "messages)",
            group_);
    end_client(released, false);
    client_.open();
    probe_.client_opened(client_.name());
    hold_.reset();
    subscription_.reset();  // the poll loop subscribes the new client to the same topics
    probe_.recreated();
    // Recovering until the new client's statistics show a broker up.
    if (options_.statistics_interval.count() <= 0 && !outage_.in_outage()) probe_.recovered();
    publish_partitions();
    log(log_level::warning, "group '{}': consumer recreated in {} ms; rejoining the group", group_,
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count());
}

bool shared_consumer::release_messages() {
    // Once finish_stop closed the links nothing more goes to the shards (they may be gone).
    const bool links_open = !links_.front()->poll_side_closed();
    // Items not handed to a shard yet still hold references: the shards never read them now.
    for (auto& link : links_) link->drop_pending_deliveries();
    return records_->live().wait_idle(steady::now() + 5s, [&] {
        if (links_open) pump_shards();  // the runners report dropped and cancelled work meanwhile
        std::this_thread::sleep_for(1ms);
    });
}

void shared_consumer::end_client(bool released, bool leave_group) {
    if (released) {
        client_.end(leave_group ? client_end::destroy : client_end::abandon_group);
        return;
    }
    client_.end(client_end::leak);
    // Leaked with the client: its messages still count on it.
    (void)records_.release();
    records_ = std::make_unique<message_records>();
}

// ---- the graceful stop --------------------------------------------------------------------

void shared_consumer::cancel_runners() {
    if (!life_.advance(consumer_phase::cancelling)) return;
    log(log_level::warning, "group '{}': cancelling handlers still running after {} ms", group_,
        options_.drain_timeout.count());
    // Deliveries still waiting behind a full ring would only be dropped by the cancelled runners.
    for (auto& link : links_) link->drop_pending_deliveries();
    routes_.for_each_trigger([&](const std::shared_ptr<trigger_state>& trigger) {
        for (auto& link : links_)
            link->push({shard_item::kind::cancel_all, trigger.get(), nullptr});
        if (auto inbox = trigger->inbox) {
            asio::post(inbox->executor, [inbox] {
                inbox->channel.close();
                inbox->channel.reset();
            });
        }
    });
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
        flush_and_notify(links_);
        if (backed_up()) std::this_thread::sleep_for(1ms);
    }
    life_.advance(consumer_phase::closing);
    for (auto& link : links_) link->close_poll_side();
    client_.close();
    // The partition queues and held messages go before the client.
    routes_.partitions().clear();
    ledger_.clear();
    hold_.reset();
    const bool released = release_messages();
    auto late = inbox_.close();
    client_.serve_commit_answers();  // answers that came in meanwhile
    commits_.fail_waiters(RD_KAFKA_RESP_ERR__DESTROY);
    if (!released)
        log(log_level::error,
            "group '{}': {} message(s) still referenced after close (kt::message must not "
            "outlive its trigger_host); leaking the client rather than blocking",
            group_, records_->live().count());
    end_client(released, true);
    life_.advance(consumer_phase::closed);
    for (auto& waiter : fences_.close()) complete(std::move(waiter));
    routes_.clear_routes();
    for (auto& waiter : std::exchange(stop_waiters_, {})) complete(std::move(waiter));
    for (auto& c : late) reject(std::move(c));
}

}  // namespace kt::detail
