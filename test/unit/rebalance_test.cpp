// Unit tests of the order of a rebalance's steps (assign, revoke, lose), without a broker: a
// client that connects nowhere, one shard link whose ring the test reads as the shard would.
#include <boost/test/unit_test.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <kt/runtime.hpp>

#include "consumer/committer.hpp"
#include "consumer/rebalance.hpp"
#include "shard/trigger_state.hpp"

namespace kd = kt::detail;
using namespace std::chrono_literals;

namespace {

struct no_events final : kd::client_events {
    void on_rebalance(rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t*) override {}
    void on_statistics(std::string_view) override {}
    void on_commit(rd_kafka_resp_err_t, const rd_kafka_topic_partition_list_t*, void*) override {}
    void wake() noexcept override {}
};

/// What happened, in order: shard items read, revoke reports sent, listeners run (listeners run
/// on the shard thread, the rest on the test's).
struct journal {
    std::mutex mutex;
    std::vector<std::string> lines;
    void add(std::string line) {
        std::lock_guard lock(mutex);
        lines.push_back(std::move(line));
    }
    std::vector<std::string> read() {
        std::lock_guard lock(mutex);
        return lines;
    }
};

const char* name_of(kd::shard_item::kind k) {
    switch (k) {
        case kd::shard_item::kind::revoke:
            return "revoke item";
        case kd::shard_item::kind::cancel_partition:
            return "cancel item";
        default:
            return "other item";
    }
}

/// Plays the shard: reads the ring, and after `answer_after` pump calls reports each revoke as
/// done (never, when 0).
struct fake_shard final : kd::shard_pump {
    kd::shard_link& link;
    journal& log;
    kd::rebalance* rebalance = nullptr;
    int answer_after = 0;
    int calls = 0;
    std::vector<kd::shard_item> revokes;

    fake_shard(kd::shard_link& l, journal& j) : link(l), log(j) {}

    void read_ring() {
        kd::shard_item item{};
        while (link.from_poll().try_pop(item)) {
            log.add(name_of(item.what));
            if (item.what == kd::shard_item::kind::revoke) revokes.push_back(item);
        }
    }
    void pump_shards() override {
        read_ring();
        if (++calls == answer_after) {
            for (const auto& r : revokes)
                link.push_completion({kd::completion::kind::revoke_done, 1, r.topic_id,
                                      r.generation, r.partition, 0});
            log.add("revoke done");
        }
        link.drain_completions([&](const kd::completion& c) {
            rebalance->revoke_reported({c.topic_id, c.partition});
        });
    }
};

kt::host_options quick_drain() {
    kt::host_options options;
    options.revoke_drain_timeout = 300ms;
    return options;
}

struct one_partition_consumer {
    kt::runtime rt{kt::runtime_options{.shards = 1}};
    std::vector<std::shared_ptr<kd::shard_link>> links{
        std::make_shared<kd::shard_link>(64, rt.shard(0))};
    journal events;
    no_events sink;
    kd::kafka_client client{
        "g",
        kd::make_conf(kt::consumer_config{
            {"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "g"}, {"log_level", "0"}}),
        sink};
    kd::router routes{"g", links};
    kd::commit_ledger ledger{kt::delivery_guarantee::at_least_once};
    kd::basic_hold_until_committed<kd::message_ptr> hold;
    kd::consumer_probe probe{"g"};
    kd::committer commits{"g", client, routes, ledger, probe};
    fake_shard shard{*links[0], events};
    const kt::host_options options = quick_drain();
    std::shared_ptr<kd::wakeup> wake = std::make_shared<kd::wakeup>();
    kd::rebalance rebalance{
        "g", {client, routes, ledger, hold, commits, links, shard}, rt, options, wake};
    kd::partition_list_ptr a0{rd_kafka_topic_partition_list_new(1)};

    one_partition_consumer() {
        client.open();
        shard.rebalance = &rebalance;
        rd_kafka_topic_partition_list_add(a0.get(), "a", 0);
        kt::trigger_options t;
        t.name = "t";
        t.topic = "a";
        auto listener = [this](const char* what) {
            return [this, what](std::vector<std::int32_t> p) -> boost::asio::awaitable<void> {
                events.add(std::string(what) + " " + std::to_string(p.at(0)));
                co_return;
            };
        };
        t.listeners = {listener("assigned"), listener("revoked"), listener("lost")};
        auto trigger =
            std::make_shared<kd::trigger_state>(1, std::move(t), kd::trigger_code{}, nullptr);
        for (const auto topic : routes.add(trigger))
            ledger.add_trigger(topic, kd::ledger_trigger_of(*trigger));
        rebalance.on_event(RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, a0.get(), false);
    }
    ~one_partition_consumer() {
        routes.partitions().clear();  // partition queues go before their client
        client.end(kd::client_end::abandon_group);
    }
};

using lines = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_SUITE(rebalance_suite)

BOOST_AUTO_TEST_CASE(an_assignment_takes_the_partition_before_its_listeners_run) {
    one_partition_consumer c;
    BOOST_TEST((c.events.read() == lines{"assigned 0"}));
    const auto* state = c.routes.find_partition({0, 0});
    BOOST_REQUIRE(state);
    BOOST_TEST(state->ledger == c.ledger.find({0, 0}));
}

BOOST_AUTO_TEST_CASE(a_revocation_drains_the_shards_then_runs_the_listeners_then_forgets_it) {
    one_partition_consumer c;
    c.shard.answer_after = 3;
    c.rebalance.on_event(RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS, c.a0.get(), false);
    BOOST_TEST((c.events.read() == lines{"assigned 0", "revoke item", "revoke done", "revoked 0"}));
    BOOST_TEST(c.shard.calls == 3);  // it waited for the shard's report, no longer
    BOOST_TEST(c.routes.find_partition({0, 0}) == nullptr);
    BOOST_TEST(c.ledger.find({0, 0}) == nullptr);
}

BOOST_AUTO_TEST_CASE(a_revocation_cancels_handlers_still_running_after_the_drain_timeout) {
    one_partition_consumer c;  // the shard never reports the revoke done
    c.rebalance.on_event(RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS, c.a0.get(), false);
    c.shard.read_ring();
    BOOST_TEST((c.events.read() == lines{"assigned 0", "revoke item", "revoked 0", "cancel item"}));
    BOOST_TEST(c.shard.calls > 1);  // pumped while it waited
    BOOST_TEST(c.routes.find_partition({0, 0}) == nullptr);
}

BOOST_AUTO_TEST_CASE(a_revocation_during_a_stop_does_not_wait_again) {
    one_partition_consumer c;
    c.rebalance.on_event(RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS, c.a0.get(), true);
    c.shard.read_ring();
    BOOST_TEST(c.shard.calls == 0);
    BOOST_TEST((c.events.read() == lines{"assigned 0", "revoked 0", "revoke item", "cancel item"}));
}

BOOST_AUTO_TEST_CASE(a_lost_partition_cancels_its_handlers_at_once_and_tells_on_lost) {
    one_partition_consumer c;
    c.rebalance.lose_all(false);
    c.shard.read_ring();
    BOOST_TEST(c.shard.calls == 0);  // nothing waits for a loss
    BOOST_TEST((c.events.read() == lines{"assigned 0", "lost 0", "revoke item", "cancel item"}));
    BOOST_TEST(c.routes.partitions().empty());
}

BOOST_AUTO_TEST_SUITE_END()
