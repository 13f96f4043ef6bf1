// Unit tests of the link between a poll thread and a shard: ring order, overflow, wake-ups.
#include <boost/test/unit_test.hpp>

#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "shard/shard_link.hpp"
#include "shard/shard_map.hpp"

using kt::detail::completion;
using kt::detail::shard_item;
using kt::detail::shard_link;

namespace {

/// A control item carrying `n` in its partition field (no trigger, no message).
shard_item item(int n) {
    return {shard_item::kind::revoke, nullptr, nullptr, n};
}

std::vector<int> read_all(shard_link& link) {
    std::vector<int> seen;
    link.from_poll().consume_all([&](const shard_item& i) { seen.push_back(i.partition); });
    return seen;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shard_link_suite)

BOOST_AUTO_TEST_CASE(items_behind_a_full_ring_wait_in_order_and_move_in_as_room_frees) {
    boost::asio::io_context shard;
    auto link = std::make_shared<shard_link>(4, shard.get_executor());
    for (int n = 0; n < 10; ++n) link->push(item(n));
    BOOST_TEST(link->backed_up());
    BOOST_TEST((read_all(*link) == std::vector<int>{0, 1, 2, 3}));
    link->flush();
    BOOST_TEST((read_all(*link) == std::vector<int>{4, 5, 6, 7}));
    link->push(item(10));  // behind the overflow, never ahead of it
    link->flush();
    link->flush();
    BOOST_TEST((read_all(*link) == std::vector<int>{8, 9, 10}));
    BOOST_TEST(!link->backed_up());
}

BOOST_AUTO_TEST_CASE(the_reader_is_woken_once_for_a_burst) {
    boost::asio::io_context shard;
    auto busy = boost::asio::make_work_guard(shard);  // poll() keeps working when idle
    auto link = std::make_shared<shard_link>(64, shard.get_executor());
    int wakeups = 0;
    link->from_poll().async_wait([&](boost::system::error_code) { ++wakeups; });
    for (int n = 0; n < 5; ++n) link->push(item(n));
    shard.poll();
    BOOST_TEST(wakeups == 0);  // nothing is announced until notify()
    link->notify();
    shard.poll();
    BOOST_TEST(wakeups == 1);
    BOOST_TEST(read_all(*link).size() == 5u);
    link->from_poll().async_wait([&](boost::system::error_code) { ++wakeups; });
    link->notify();  // nothing pushed since the last one: no spurious wake-up
    shard.poll();
    BOOST_TEST(wakeups == 1);
}

BOOST_AUTO_TEST_CASE(nothing_is_pushed_once_the_poll_side_closed_and_the_reader_sees_the_end) {
    boost::asio::io_context shard;
    auto busy = boost::asio::make_work_guard(shard);
    auto link = std::make_shared<shard_link>(4, shard.get_executor());
    link->push(item(1));
    link->close_poll_side();
    link->push(item(2));  // the runners may be gone: dropped
    boost::system::error_code seen;
    link->from_poll().async_wait([&](boost::system::error_code ec) { seen = ec; });
    BOOST_TEST((read_all(*link) == std::vector<int>{1}));
    shard.poll();
    BOOST_TEST(!seen);  // woken for the item already there...
    link->from_poll().async_wait([&](boost::system::error_code ec) { seen = ec; });
    shard.poll();
    BOOST_TEST((seen == boost::asio::experimental::error::channel_closed));  // ...then the end
}

BOOST_AUTO_TEST_CASE(completions_behind_a_full_ring_arrive_later_in_order) {
    boost::asio::io_context shard;
    auto link = std::make_shared<shard_link>(2, shard.get_executor());
    for (int n = 0; n < 5; ++n)
        link->push_completion({completion::kind::done, 1, 0, 0, 0, static_cast<std::int64_t>(n)});
    std::vector<std::int64_t> offsets;
    auto drain = [&] {
        link->drain_completions([&](const completion& c) { offsets.push_back(c.offset); });
    };
    drain();
    while (offsets.size() < 5) {
        shard.run_one();  // the retry timer moves the overflow into the ring
        drain();
    }
    BOOST_TEST((offsets == std::vector<std::int64_t>{0, 1, 2, 3, 4}));
}

BOOST_AUTO_TEST_CASE(consecutive_partitions_of_a_topic_go_to_consecutive_shards) {
    using kt::detail::shard_of;
    const unsigned first = shard_of("orders", 0, 4);
    for (int p = 0; p < 8; ++p) BOOST_TEST(shard_of("orders", p, 4) == (first + p) % 4);
    BOOST_TEST(shard_of("orders", 3, 1) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
