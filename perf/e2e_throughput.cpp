// End-to-end consume throughput, side by side in one run: a raw librdkafka consume loop vs
// kafka-triggers with one no-op trigger, on the same topic of the embedded cluster (or
// --bootstrap). Prints msgs/s for each and their ratio (DESIGN §7 target: ≥ 0.95).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <kt/kt.hpp>

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

/// Messages/s from the first message to the last (group join excluded).
double raw_loop(const std::string& bootstrap, const std::string& topic, long total) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (auto [k, v] :
         {std::pair{"bootstrap.servers", bootstrap.c_str()}, std::pair{"group.id", "raw-baseline"},
          std::pair{"auto.offset.reset", "earliest"}, std::pair{"enable.auto.commit", "true"}})
        rd_kafka_conf_set(conf, k, v, err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    rd_kafka_poll_set_consumer(rk);
    auto* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    long seen = 0;
    steady::time_point first;
    while (seen < total) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            if (seen++ == 0) first = steady::now();
        }
        rd_kafka_message_destroy(m);
    }
    const double seconds = std::chrono::duration<double>(steady::now() - first).count();
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return static_cast<double>(total - 1) / seconds;
}

double one_trigger(const std::string& bootstrap, const std::string& topic, long total,
                   unsigned shards) {
    kt::runtime rt{{.shards = shards}};
    kt::trigger_host host{rt};
    std::atomic<long> seen{0};
    std::atomic<std::int64_t> first_ns{0}, last_ns{0};
    const char* backlog = std::getenv("KT_MAX_BACKLOG");
    host.add_trigger(
        {.name = "noop",
         .topic = topic,
         .consumer = {{"bootstrap.servers", bootstrap}, {"group.id", "kt-one-trigger"}},
         .max_backlog = backlog ? std::strtoul(backlog, nullptr, 10) : 10000},
        [&](const kt::message&) -> asio::awaitable<void> {
            const auto now = steady::now().time_since_epoch().count();
            const long n = seen.fetch_add(1, std::memory_order_relaxed) + 1;
            if (n == 1) first_ns = now;
            if (n == total) last_ns = now;
            co_return;
        });
    host.start();
    while (last_ns.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const double seconds = static_cast<double>(last_ns - first_ns) * 1e-9;
    return static_cast<double>(total - 1) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
    const long total = argc > 1 ? std::atol(argv[1]) : 120000;
    const unsigned shards = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 2;
    kt::set_log_level(kt::log_level::warning);
    kt::embedded_cluster cluster{{.brokers = 3}};
    const std::string topic = "e2e";
    cluster.create_topic(topic, 6);
    {
        kt::producer producer({{"bootstrap.servers", cluster.bootstrap()}, {"linger.ms", "5"}});
        const std::string value(100, 'v');
        for (long i = 0; i < total; ++i)
            producer.produce(topic, fmt::format("key-{}", i % 1000), value);
        producer.flush(std::chrono::seconds(60));
    }
    // Alternate the order so neither side always runs on a warmer cache.
    const double raw1 = raw_loop(cluster.bootstrap(), topic, total);
    const double kt1 = one_trigger(cluster.bootstrap(), topic, total, shards);
    std::printf("raw librdkafka loop : %10.0f msgs/s\n", raw1);
    std::printf("1 no-op trigger     : %10.0f msgs/s (%u shards)\n", kt1, shards);
    std::printf("ratio trigger / raw : %10.3f\n", kt1 / raw1);
}
