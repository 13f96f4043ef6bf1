// Unit tests of the router (topics, routes, hold-back and resume) and the subscription's timing,
// without a broker.
#include <boost/test/unit_test.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "consumer/commit_ledger.hpp"
#include "consumer/router.hpp"
#include "consumer/topic_subscription.hpp"
#include "consumer/trigger_fences.hpp"
#include "shard/trigger_state.hpp"

using kt::delivery_guarantee;
using kt::detail::commit_ledger;
using kt::detail::completion;
using kt::detail::ledger_trigger;
using kt::detail::partition_id;
using kt::detail::partition_state;
using kt::detail::router;
using kt::detail::shard_link;
using kt::detail::topic_subscription;
using kt::detail::trigger_fences;
using kt::detail::trigger_state;

namespace {

std::shared_ptr<trigger_state> trigger(std::uint32_t id, std::string topic,
                                       std::size_t max_backlog = 10000) {
    kt::trigger_options options;
    options.name = "t" + std::to_string(id);
    options.topic = std::move(topic);
    options.max_backlog = max_backlog;
    return std::make_shared<trigger_state>(id, std::move(options), kt::detail::trigger_code{},
                                           nullptr);
}

completion done(std::uint32_t trigger, std::uint32_t generation, std::int64_t offset) {
    return {completion::kind::done, trigger, 0, generation, 0, offset};
}

/// A router with triggers 1 and 2 (max_backlog 4) on topic "a", partition a[0] assigned under
/// generation 5 and held back after 6 deliveries to each.
struct held_back_partition {
    std::vector<std::shared_ptr<shard_link>> links;
    router routes{"g", links};
    commit_ledger ledger{delivery_guarantee::at_least_once};
    const partition_id id{0, 0};
    partition_state* state = nullptr;

    held_back_partition() {
        constexpr std::array<ledger_trigger, 2> triggers{{{1, 101}, {2, 102}}};
        for (const auto& t : triggers) ledger.add_trigger(routes.add(trigger(t.id, "a", 4))[0], t);
        partition_state s;
        s.ledger = &ledger.assign(id, 5, triggers);
        for (std::int64_t o = 0; o < 6; ++o)
            for (const auto& t : triggers) s.ledger->delivered(t.id, o);
        routes.partitions()[id] = std::move(s);
        state = routes.find_partition(id);
        routes.set_paused(id, *state, true);
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(router_suite)

BOOST_AUTO_TEST_CASE(topics_get_ids_in_the_order_they_are_first_named) {
    std::vector<std::shared_ptr<shard_link>> links;
    router routes("g", links);
    BOOST_TEST(routes.topic_id("b") == 0u);
    BOOST_TEST(routes.topic_id("a") == 1u);
    BOOST_TEST(routes.topic_id("b") == 0u);
    BOOST_TEST(routes.topic_name(1) == "a");
    BOOST_TEST(*routes.find_topic("a") == 1u);
    BOOST_TEST(routes.find_topic("c") == nullptr);
}

BOOST_AUTO_TEST_CASE(the_subscription_is_the_sorted_topics_some_trigger_still_wants) {
    std::vector<std::shared_ptr<shard_link>> links;
    router routes("g", links);
    auto on_b = trigger(1, "b"), on_a = trigger(2, "a"), also_on_a = trigger(3, "a");
    for (const auto& t : {on_b, on_a, also_on_a}) routes.add(t);
    BOOST_TEST((routes.wanted_topics() == std::vector<std::string>{"a", "b"}));
    BOOST_TEST(routes.start_detaching(on_a));
    BOOST_TEST(!routes.start_detaching(on_a));                                   // already
    BOOST_TEST((routes.wanted_topics() == std::vector<std::string>{"a", "b"}));  // 3 still wants a
    BOOST_TEST(routes.start_detaching(on_b));
    BOOST_TEST((routes.wanted_topics() == std::vector<std::string>{"a"}));
    // A detaching trigger is still routed (its fence has not come back yet).
    BOOST_TEST((routes.routed_topics() == std::vector<std::string>{"b", "a"}));
}

BOOST_AUTO_TEST_CASE(a_removed_trigger_leaves_its_topic_routed_to_the_others_only) {
    std::vector<std::shared_ptr<shard_link>> links;
    router routes("g", links);
    auto first = trigger(1, "a"), second = trigger(2, "a");
    const auto topic = routes.add(first).at(0);
    routes.add(second);
    BOOST_TEST(routes.remove(topic, 1));
    BOOST_TEST(!routes.remove(topic, 1));
    BOOST_TEST(!routes.start_detaching(first));  // not routed any more
    BOOST_REQUIRE(routes.route(topic).size() == 1u);
    BOOST_TEST(routes.route(topic).front().trigger == second);
}

BOOST_AUTO_TEST_CASE(a_pattern_routes_known_and_later_topics_and_subscribes_as_itself) {
    std::vector<std::shared_ptr<shard_link>> links;
    router routes("g", links);
    BOOST_TEST(routes.topic_id("orders.eu") == 0u);  // known before the pattern trigger comes
    routes.topic_id("payments");
    auto named = trigger(1, "payments"), pattern = trigger(2, "^orders\\.");
    pattern->dead_letter_topic = "orders.dlq";  // matches, but is never routed to its trigger
    routes.add(named);
    BOOST_TEST((routes.add(pattern) == std::vector<std::uint32_t>{0}));
    BOOST_TEST((routes.wanted_topics() == std::vector<std::string>{"^orders\\.", "payments"}));
    // Topics named later (an assignment, a fetched message) are routed as they appear.
    const auto us = routes.topic_id("orders.us"), dlq = routes.topic_id("orders.dlq");
    BOOST_REQUIRE(routes.route(us).size() == 1u);
    BOOST_TEST(routes.route(us).front().trigger == pattern);
    BOOST_TEST(routes.route(dlq).empty());
    BOOST_TEST(routes.route(*routes.find_topic("payments")).front().trigger == named);
    // Detaching marks every topic it took and routes no new one to it.
    BOOST_TEST(routes.start_detaching(pattern));
    BOOST_TEST(routes.route(us).front().detaching);
    BOOST_TEST(routes.route(routes.topic_id("orders.asia")).empty());
    BOOST_TEST((routes.wanted_topics() == std::vector<std::string>{"payments"}));
    for (const auto topic : {0u, us}) BOOST_TEST(routes.remove(topic, 2));
    routes.remove_pattern(2);
    BOOST_TEST(routes.route(routes.topic_id("orders.africa")).empty());
}

BOOST_AUTO_TEST_CASE(a_held_back_partition_resumes_once_every_trigger_is_down_to_half_its_backlog) {
    held_back_partition p;
    BOOST_TEST(p.routes.any_paused());
    // Trigger 1 finishes 0..3 (backlog 2 = max_backlog / 2); trigger 2 still has 6 in flight.
    for (std::int64_t o = 0; o < 4; ++o) p.routes.completed(done(1, 5, o), false);
    BOOST_TEST(p.state->paused);
    for (std::int64_t o = 0; o < 3; ++o) p.routes.completed(done(2, 5, o), false);
    BOOST_TEST(p.state->paused);  // trigger 2's backlog is 3
    p.routes.completed(done(2, 5, 3), false);
    BOOST_TEST(!p.state->paused);
    BOOST_TEST(!p.routes.any_paused());
}

BOOST_AUTO_TEST_CASE(a_completion_from_an_earlier_assignment_of_the_partition_is_fenced) {
    held_back_partition p;
    for (std::int64_t o = 0; o < 6; ++o)
        for (std::uint32_t t : {1u, 2u}) p.routes.completed(done(t, 4, o), false);
    BOOST_TEST(p.state->paused);
    BOOST_TEST(p.state->ledger->backlog(1) == 6u);
    BOOST_TEST(*p.ledger.committable(p.id) == 0);
}

BOOST_AUTO_TEST_CASE(a_partition_held_back_during_a_stop_stays_held_back) {
    held_back_partition p;
    for (std::int64_t o = 0; o < 6; ++o)
        for (std::uint32_t t : {1u, 2u}) p.routes.completed(done(t, 5, o), true);
    BOOST_TEST(p.state->paused);
    BOOST_TEST(*p.ledger.committable(p.id) == 6);  // what finished still counts
}

BOOST_AUTO_TEST_CASE(completions_for_a_partition_no_longer_assigned_change_nothing) {
    held_back_partition p;
    p.routes.partitions().erase(p.id);
    p.ledger.revoke(p.id);
    p.routes.completed(done(1, 5, 0), false);
    BOOST_TEST(p.routes.find_partition(p.id) == nullptr);
    BOOST_TEST(!p.ledger.committable(p.id).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(topic_subscription_suite)

using clock_type = topic_subscription::clock;

BOOST_AUTO_TEST_CASE(an_unchanged_subscription_is_not_sent_again) {
    topic_subscription s;
    const auto now = clock_type::now();
    s.changed();
    BOOST_TEST((s.next({"a"}, now) == std::vector<std::string>{"a"}));
    s.rebalanced();
    s.changed();
    BOOST_TEST(s.due());
    BOOST_TEST(!s.next({"a"}, now).has_value());
    BOOST_TEST(!s.due());
}

BOOST_AUTO_TEST_CASE(a_change_waits_for_the_rebalance_of_the_previous_one_at_most_ten_seconds) {
    topic_subscription s;
    const auto now = clock_type::now();
    s.changed();
    BOOST_TEST(s.next({"a"}, now).has_value());
    s.changed();
    BOOST_TEST(!s.next({"a", "b"}, now + std::chrono::seconds(9)).has_value());
    BOOST_TEST(s.due());  // still to do
    BOOST_TEST(
        (s.next({"a", "b"}, now + std::chrono::seconds(10)) == std::vector<std::string>{"a", "b"}));
    s.changed();
    s.rebalanced();
    BOOST_TEST((s.next({"b"}, now + std::chrono::seconds(10)) == std::vector<std::string>{"b"}));
}

BOOST_AUTO_TEST_CASE(no_topics_left_unsubscribes_without_waiting_for_a_rebalance_afterwards) {
    topic_subscription s;
    const auto now = clock_type::now();
    s.changed();
    BOOST_TEST(s.next({"a"}, now).has_value());
    s.rebalanced();
    s.changed();
    BOOST_TEST(s.next({}, now)->empty());
    s.changed();
    BOOST_TEST(s.next({"c"}, now).has_value());  // an unsubscribe is not waited for
}

BOOST_AUTO_TEST_CASE(a_new_client_subscribes_to_the_same_topics_from_scratch) {
    topic_subscription s;
    const auto now = clock_type::now();
    s.changed();
    BOOST_TEST(s.next({"a"}, now).has_value());  // awaiting its rebalance
    s.reset();
    BOOST_TEST(s.due());
    BOOST_TEST((s.next({"a"}, now) == std::vector<std::string>{"a"}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(trigger_fences_suite)

BOOST_AUTO_TEST_CASE(a_removal_is_done_once_every_shard_confirmed_its_fence) {
    trigger_fences fences;
    int done = 0;
    fences.start(7, trigger(7, "a"), 2, [&](std::exception_ptr) { ++done; });
    BOOST_TEST(!fences.confirmed(7).has_value());
    BOOST_TEST(!fences.confirmed(8).has_value());  // not fenced
    auto waiter = fences.confirmed(7);
    BOOST_REQUIRE(waiter.has_value());
    auto handler = std::move(*waiter);
    std::move(handler)(nullptr);
    BOOST_TEST(done == 1);
    BOOST_TEST(!fences.confirmed(7).has_value());  // a late confirmation changes nothing
}

BOOST_AUTO_TEST_CASE(closing_hands_back_the_waiters_of_unfinished_removals) {
    trigger_fences fences;
    fences.start(1, trigger(1, "a"), 2, [](std::exception_ptr) {});
    fences.start(2, trigger(2, "b"), 2, [](std::exception_ptr) {});
    BOOST_TEST(!fences.confirmed(1).has_value());
    BOOST_TEST(fences.close().size() == 2u);
    BOOST_TEST(fences.close().empty());
}

BOOST_AUTO_TEST_SUITE_END()
