// Unit tests of kt::spsc_channel: wake-ups, close, capacity, and cross-thread stress runs (one
// into a kt::runtime shard, sleeping or polling when idle).
#define BOOST_TEST_MODULE channel
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/channel.hpp>
#include <kt/runtime.hpp>

namespace asio = boost::asio;

namespace {

/// Consumer coroutine: drains, counts its wake-ups, stops at close.
struct counting_consumer {
    std::vector<int> received;
    int wakeups = 0;
    bool closed = false;

    asio::awaitable<void> run(kt::spsc_channel<int>& channel) {
        for (;;) {
            channel.consume_all([&](int v) { received.push_back(v); });
            auto [ec] = co_await channel.async_wait(asio::as_tuple(asio::use_awaitable));
            ++wakeups;
            if (ec) {
                channel.consume_all([&](int v) { received.push_back(v); });
                closed = ec == asio::experimental::error::channel_closed;
                co_return;
            }
        }
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_parked_consumer_is_woken_once_per_burst_not_once_per_item) {
    asio::io_context ctx;
    kt::spsc_channel<int> channel(256, ctx.get_executor());
    counting_consumer consumer;
    asio::co_spawn(ctx, consumer.run(channel), asio::detached);
    ctx.poll();  // consumer parks on the empty ring
    BOOST_TEST(consumer.wakeups == 0);

    for (int i = 0; i < 100; ++i) BOOST_TEST(channel.push(i));  // push() notifies every time
    ctx.poll();
    BOOST_TEST(consumer.wakeups == 1);
    BOOST_TEST(consumer.received.size() == 100u);
}

BOOST_AUTO_TEST_CASE(items_pushed_before_waiting_complete_the_wait_at_once) {
    asio::io_context ctx;
    kt::spsc_channel<int> channel(8, ctx.get_executor());
    BOOST_TEST(channel.push(7));
    bool done = false;
    channel.async_wait([&](boost::system::error_code ec) { done = !ec; });
    BOOST_TEST(!done);  // never completes inline
    ctx.poll();
    BOOST_TEST(done);
    int v = 0;
    BOOST_TEST(channel.try_pop(v));
    BOOST_TEST(v == 7);
}

BOOST_AUTO_TEST_CASE(close_wakes_a_parked_waiter_with_channel_closed_after_the_last_item) {
    asio::io_context ctx;
    kt::spsc_channel<int> channel(8, ctx.get_executor());
    counting_consumer consumer;
    asio::co_spawn(ctx, consumer.run(channel), asio::detached);
    ctx.poll();
    channel.try_push(1);
    channel.close();
    ctx.poll();
    BOOST_TEST(consumer.closed);
    BOOST_TEST(consumer.received == std::vector<int>{1});
    BOOST_TEST(ctx.stopped());  // the consumer coroutine ended
}

BOOST_AUTO_TEST_CASE(a_full_ring_refuses_pushes_and_accepts_again_after_a_pop) {
    asio::io_context ctx;
    kt::spsc_channel<int> channel(4, ctx.get_executor());
    int pushed = 0;
    while (channel.try_push(pushed)) ++pushed;
    BOOST_TEST(pushed == 4);
    int v = -1;
    BOOST_TEST(channel.try_pop(v));
    BOOST_TEST(v == 0);
    BOOST_TEST(channel.try_push(99));
}

BOOST_AUTO_TEST_CASE(a_producer_thread_and_a_coroutine_consumer_lose_and_reorder_nothing) {
    // Varied ring sizes and burst lengths make the consumer park and wake at many points.
    for (std::size_t capacity : {2u, 16u, 1024u}) {
        asio::io_context ctx;
        kt::spsc_channel<int> channel(capacity, ctx.get_executor());
        counting_consumer consumer;
        asio::co_spawn(ctx, consumer.run(channel), asio::detached);
        constexpr int total = 200000;
        std::thread producer([&] {
            std::mt19937 rng(static_cast<unsigned>(capacity));
            int next = 0;
            while (next < total) {
                const int burst = static_cast<int>(rng() % 64) + 1;
                for (int i = 0; i < burst && next < total;) {
                    if (channel.try_push(next)) {
                        ++next;
                        ++i;
                    } else {
                        channel.notify();
                        std::this_thread::yield();
                    }
                }
                channel.notify();
                if (rng() % 8 == 0) std::this_thread::yield();
            }
            channel.close();
        });
        ctx.run();
        producer.join();
        BOOST_TEST_REQUIRE(consumer.received.size() == static_cast<std::size_t>(total));
        bool in_order = true;
        for (int i = 0; i < total; ++i)
            in_order &= consumer.received[static_cast<std::size_t>(i)] == i;
        BOOST_TEST(in_order);
        BOOST_TEST(consumer.closed);
    }
}

BOOST_AUTO_TEST_CASE(a_runtime_shard_gets_everything_whether_it_sleeps_or_polls_when_idle) {
    // Bursts with pauses longer than the polling window: the shard alternates between polling,
    // sleeping and being woken. The runtime's destructor must end the polling loop.
    for (auto poll_for : {std::chrono::microseconds(0), std::chrono::microseconds(200)}) {
        counting_consumer consumer;
        std::promise<void> done;
        {
            kt::runtime rt({.shards = 1, .poll_before_sleep = poll_for});
            kt::spsc_channel<int> channel(64, rt.shard(0));
            asio::co_spawn(
                rt.shard(0),
                [&]() -> asio::awaitable<void> {
                    co_await consumer.run(channel);
                    done.set_value();
                },
                asio::detached);
            constexpr int total = 20000;
            std::mt19937 rng(7);
            for (int next = 0; next < total;) {
                for (int burst = static_cast<int>(rng() % 32) + 1; burst > 0 && next < total;)
                    if (channel.try_push(next)) {
                        ++next;
                        --burst;
                    } else {
                        channel.notify();
                        std::this_thread::yield();
                    }
                channel.notify();
                if (rng() % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
            }
            channel.close();
            BOOST_TEST_REQUIRE((done.get_future().wait_for(std::chrono::seconds(30)) ==
                                std::future_status::ready));
        }
        BOOST_TEST_REQUIRE(consumer.received.size() == 20000u);
        bool in_order = true;
        for (int i = 0; i < 20000; ++i)
            in_order &= consumer.received[static_cast<std::size_t>(i)] == i;
        BOOST_TEST(in_order, "poll_before_sleep " << poll_for.count() << " us");
        BOOST_TEST(consumer.closed);
    }
}
