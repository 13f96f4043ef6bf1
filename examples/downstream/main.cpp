// downstream: an application's own io_context serving kafka-triggers' HTTP endpoints (/metrics,
// /healthz, /triggers) and running two triggers, on an embedded Kafka cluster.
//
//   downstream                          produces 1000 messages, serves until SIGINT/SIGTERM
//   downstream --exit-after-messages N  produces N messages, stops once both triggers handled them
//                                       and exits 0 only if each handled exactly N (1 otherwise)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/http.hpp>
#include <kt/kt.hpp>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

const std::string topic = "orders";

/// Messages handled by the trigger that handled the fewest.
std::uint64_t least_handled(const kt::trigger_host& host) {
    std::uint64_t least = std::numeric_limits<std::uint64_t>::max();
    for (const auto& trigger : host.stats()) least = std::min(least, trigger.handled);
    return least;
}

/// Begins the graceful stop once every trigger handled `expected` messages, or after a minute.
asio::awaitable<void> stop_when_handled(kt::runtime& rt, const kt::trigger_host& host,
                                        std::uint64_t expected) {
    asio::steady_timer tick(co_await asio::this_coro::executor);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (least_handled(host) < expected && std::chrono::steady_clock::now() < deadline) {
        tick.expires_after(50ms);
        co_await tick.async_wait(asio::use_awaitable);
    }
    rt.request_stop();
}

}  // namespace

int main(int argc, char** argv) {
    std::uint64_t exit_after = 0;
    if (argc == 3 && std::string_view(argv[1]) == "--exit-after-messages") {
        exit_after = std::stoull(argv[2]);
    } else if (argc != 1) {
        std::cerr << "usage: downstream [--exit-after-messages N]\n";
        return 2;
    }
    const std::uint64_t messages = exit_after > 0 ? exit_after : 1000;

    kt::embedded_cluster kafka;  // with real brokers: their bootstrap.servers instead
    kafka.create_topic(topic, 3);
    kt::producer producer({{"bootstrap.servers", kafka.bootstrap()}});
    for (std::uint64_t i = 0; i < messages; ++i)
        producer.produce(topic, "customer-" + std::to_string(i % 10), "order " + std::to_string(i));

    asio::io_context io;  // the application's own: it runs the triggers and the HTTP server
    kt::runtime rt{io};
    kt::trigger_host host{rt};
    const kt::consumer_config consumer{{"bootstrap.servers", kafka.bootstrap()},
                                       {"group.id", "downstream"}};
    host.add_trigger({.name = "audit", .topic = topic, .consumer = consumer},
                     [](const kt::message&) -> asio::awaitable<void> { co_return; });
    host.add_trigger({.name = "billing", .topic = topic, .consumer = consumer, .max_in_flight = 16},
                     [](const kt::message&) -> asio::awaitable<void> {
                         asio::steady_timer payment_call(co_await asio::this_coro::executor, 1ms);
                         co_await payment_call.async_wait(asio::use_awaitable);
                     });
    host.start();

    kt::http::endpoints http{io.get_executor(), host};  // 127.0.0.1, an ephemeral port
    std::cout << "metrics: http://127.0.0.1:" << http.port() << "/metrics" << std::endl;
    if (exit_after > 0) asio::co_spawn(io, stop_when_handled(rt, host, exit_after), asio::detached);

    rt.run_until_signal();  // runs io; the stop drains and commits the triggers
    bool all_handled = true;
    for (const auto& trigger : host.stats()) {
        std::cout << trigger.name << " handled " << trigger.handled << " of " << messages << '\n';
        all_handled = all_handled && trigger.handled == messages;
    }
    return exit_after == 0 || all_handled ? 0 : 1;
}
