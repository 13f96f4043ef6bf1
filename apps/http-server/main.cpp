// http-server: kafka-triggers inside an async HTTP server. ONE io_context runs the Beast endpoints
// (/metrics, /healthz, /triggers, pause/resume) and every trigger handler; see
// README-observability.md.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/program_options.hpp>

#include <cli.hpp>
#include <kt/admin.hpp>
#include <kt/embedded_cluster.hpp>
#include <kt/errors.hpp>
#include <kt/http.hpp>
#include <kt/log.hpp>
#include <kt/producer.hpp>
#include <kt/runtime.hpp>
#include <kt/trigger_host.hpp>

namespace asio = boost::asio;
namespace po = boost::program_options;
using namespace std::chrono_literals;

namespace {

struct options {
    std::string bootstrap;  // empty: start an embedded cluster
    std::string topic = "demo";
    int partitions = 3;
    std::string group = "http-server";
    unsigned short port = 0;
    long produce = 0;
};

std::optional<options> parse_options(int argc, char** argv) {
    options o;
    po::options_description desc(
        "http-server: kafka-triggers and a Beast HTTP server on one io_context\n"
        "Without --bootstrap it starts an embedded 3-broker cluster.\nOptions");
    desc.add_options()("help,h", "show this help")("bootstrap", po::value(&o.bootstrap),
                                                   "Kafka bootstrap servers")(
        "topic", po::value(&o.topic)->default_value(o.topic), "topic the demo triggers consume")(
        "partitions", po::value(&o.partitions)->default_value(o.partitions),
        "partitions of the topic when it is created")(
        "group", po::value(&o.group)->default_value(o.group), "consumer group id")(
        "port", po::value(&o.port)->default_value(o.port),
        "HTTP port on 127.0.0.1 (0: ephemeral; printed as 'listening: 127.0.0.1:PORT')")(
        "produce", po::value(&o.produce)->default_value(o.produce),
        "produce N demo messages to the topic while the triggers run");
    if (!kt::cli::parse(argc, argv, desc)) return std::nullopt;
    if (o.partitions < 1) throw po::error("--partitions must be at least 1");
    return o;
}

void create_topic(const options& o, kt::embedded_cluster* cluster) {
    if (cluster) return cluster->create_topic(o.topic, o.partitions);
    kt::admin admin(kt::consumer_config{{"bootstrap.servers", o.bootstrap}});
    try {
        if (admin.partition_count(o.topic) > 0) return;
    } catch (const kt::kafka_error&) {  // unknown topic: create it below
    }
    admin.create_topic(o.topic, o.partitions);
}

/// Two demo triggers on one shared consumer: "fast" returns at once, "slow" awaits a 5 ms timer
/// (standing in for a database or HTTP call) without blocking the io_context.
void add_demo_triggers(kt::trigger_host& host, const options& o) {
    const kt::consumer_config consumer{{"bootstrap.servers", o.bootstrap}, {"group.id", o.group}};
    host.add_trigger({.name = "fast", .topic = o.topic, .consumer = consumer},
                     [](const kt::message&) -> asio::awaitable<void> { co_return; });
    host.add_trigger({.name = "slow", .topic = o.topic, .consumer = consumer},
                     [](const kt::message&) -> asio::awaitable<void> {
                         asio::steady_timer simulated_io(co_await asio::this_coro::executor, 5ms);
                         co_await simulated_io.async_wait(asio::use_awaitable);
                     });
}

/// Produces `count` keyed messages, yielding to the io_context every 100 so that handlers and
/// HTTP requests run meanwhile.
asio::awaitable<void> produce_demo_load(kt::producer& producer, std::string topic, long count) {
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (long i = 0; i < count; ++i) {
        producer.produce(topic, fmt::format("key-{}", i % 100), fmt::format("message {}", i));
        if (i % 100 == 99) {
            pause.expires_after(1ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
    }
    std::cout << fmt::format("produced {} messages", count) << std::endl;
}

int run(options o) {
    std::unique_ptr<kt::embedded_cluster> cluster;  // declared first: outlives every client
    if (o.bootstrap.empty()) {
        cluster = std::make_unique<kt::embedded_cluster>();
        o.bootstrap = cluster->bootstrap();
    }
    std::cout << "bootstrap: " << o.bootstrap << std::endl;
    create_topic(o, cluster.get());
    kt::producer producer({{"bootstrap.servers", o.bootstrap}, {"linger.ms", "5"}});

    asio::io_context io;  // the application's one io_context
    kt::runtime rt{io};   // kafka-triggers uses it as its single shard
    kt::trigger_host host{rt};
    add_demo_triggers(host, o);
    host.start();

    kt::http::endpoints http{io.get_executor(), host, {.port = o.port}};
    std::cout << "listening: 127.0.0.1:" << http.port() << std::endl;
    if (o.produce > 0)
        asio::co_spawn(io, produce_demo_load(producer, o.topic, o.produce), asio::detached);

    // Runs `io` until SIGINT/SIGTERM, then drains and commits the triggers (HTTP still answers
    // meanwhile) and stops `io`.
    rt.run_until_signal();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        auto o = parse_options(argc, argv);
        return o ? run(std::move(*o)) : 0;
    } catch (const po::error& e) {
        std::cerr << "http-server: " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "http-server: error: " << e.what() << '\n';
        return 1;
    }
}
