// kt-host: CLI host and demo of kafka-triggers. Runs N triggers per topic on a shared (or not)
// consumer, optionally produces test data first, and writes per-message and summary records.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <kt/kt.hpp>

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
using namespace std::chrono_literals;

namespace {

struct topic_spec {
    std::string name;
    int partitions = 6;
};

struct options {
    std::string bootstrap;
    std::vector<topic_spec> topics;
    std::string group = "kt-host";
    int triggers = 1;
    kt::sharing sharing = kt::sharing::per_group;
    unsigned shards = 0;
    int handler_ms = 0;
    long produce = 0;
    std::string output;
    double exit_when_idle = 0;
    std::string summary_json;
    kt::log_level log_level = kt::log_level::info;
    kt::ordering ordering = kt::ordering::partition;
    unsigned max_in_flight = 64;
    long fail_every = 0;
    unsigned retries = 0;
    int retry_backoff_ms = 100;
    std::string dlq;  // empty: <topic>.dlq
    kt::delivery_guarantee delivery = kt::delivery_guarantee::at_least_once;
    std::size_t batch = 0;
    std::string output_topic;  // transform: copy each message there
    std::string instance_id;
    std::vector<std::pair<std::string, std::string>> properties;  // extra consumer properties
};

template <typename Enum, std::size_t N>
Enum parse_choice(const std::string& option, const std::string& text,
                  const std::pair<const char*, Enum> (&choices)[N]) {
    std::string names;
    for (const auto& [name, value] : choices) {
        if (text == name) return value;
        names += names.empty() ? name : fmt::format(", {}", name);
    }
    throw po::error(fmt::format("invalid --{} '{}': use {}", option, text, names));
}

constexpr std::pair<const char*, kt::sharing> sharing_choices[] = {
    {"per_group", kt::sharing::per_group},
    {"per_topic", kt::sharing::per_topic},
    {"off", kt::sharing::off}};
constexpr std::pair<const char*, kt::log_level> level_choices[] = {
    {"debug", kt::log_level::debug},
    {"info", kt::log_level::info},
    {"warning", kt::log_level::warning},
    {"error", kt::log_level::error}};
constexpr std::pair<const char*, kt::ordering> ordering_choices[] = {
    {"partition", kt::ordering::partition},
    {"key", kt::ordering::key},
    {"none", kt::ordering::none}};
constexpr std::pair<const char*, kt::delivery_guarantee> delivery_choices[] = {
    {"at_least_once", kt::delivery_guarantee::at_least_once},
    {"at_most_once", kt::delivery_guarantee::at_most_once},
    {"exactly_once", kt::delivery_guarantee::exactly_once}};

topic_spec parse_topic(const std::string& text) {
    const auto colon = text.find(':');
    topic_spec spec{text.substr(0, colon)};
    if (colon != std::string::npos) {
        try {
            spec.partitions = std::stoi(text.substr(colon + 1));
        } catch (const std::exception&) {
            spec.partitions = 0;
        }
        if (spec.partitions <= 0)
            throw po::error(fmt::format("invalid --topic '{}': use NAME or NAME:PARTITIONS", text));
    }
    return spec;
}

std::optional<options> parse_options(int argc, char** argv) {
    options o;
    std::vector<std::string> topics, properties;
    std::string sharing = "per_group", level = "info", ordering = "partition",
                delivery = "at_least_once";
    po::options_description desc(
        "kt-host: runs kafka-triggers triggers (the demo host)\n"
        "Without --bootstrap or $KAFKA_BOOTSTRAP_SERVERS it starts an embedded 3-broker cluster.\n"
        "Options");
    desc.add_options()("help,h", "show this help")(
        "bootstrap", po::value(&o.bootstrap),
        "Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")(
        "topic", po::value(&topics), "NAME[:PARTITIONS] to consume, repeatable (default orders:6)")(
        "group", po::value(&o.group)->default_value(o.group), "consumer group id")(
        "triggers", po::value(&o.triggers)->default_value(1), "triggers per topic")(
        "sharing", po::value(&sharing)->default_value(sharing),
        "consumer sharing: per_group | per_topic | off (off: one consumer and group "
        "<group>.<trigger> each)")("shards", po::value(&o.shards)->default_value(0),
                                   "handler threads (0: one per core)")(
        "handler-ms", po::value(&o.handler_ms)->default_value(0),
        "each handler awaits an Asio timer this long (simulated I/O)")(
        "produce", po::value(&o.produce)->default_value(0),
        "first produce N keyed 100-byte messages per topic")(
        "output", po::value(&o.output), "append one JSON line per handled message to FILE")(
        "exit-when-idle", po::value(&o.exit_when_idle)->default_value(0),
        "stop gracefully after SEC seconds without messages (before the first message: SEC + 10 s; "
        "0: run until SIGINT/SIGTERM)")("summary-json", po::value(&o.summary_json),
                                        "write a JSON summary to FILE at exit")(
        "log-level", po::value(&level)->default_value(level), "debug | info | warning | error")(
        "ordering", po::value(&ordering)->default_value(ordering),
        "partition (one at a time per partition) | key (one at a time per key) | none")(
        "max-in-flight", po::value(&o.max_in_flight)->default_value(o.max_in_flight),
        "handlers of a trigger running at once, per shard")(
        "fail-every", po::value(&o.fail_every)->default_value(0),
        "the handler throws for messages whose offset is a multiple of N (0: never)")(
        "retries", po::value(&o.retries)->default_value(0), "retries after a failed attempt")(
        "retry-backoff-ms", po::value(&o.retry_backoff_ms)->default_value(o.retry_backoff_ms),
        "first retry delay (doubles per attempt, jittered, capped at 10 s)")(
        "dlq", po::value(&o.dlq),
        "dead letter topic for failed messages, or 'off' (default <topic>.dlq)")(
        "delivery", po::value(&delivery)->default_value(delivery),
        "at_least_once | at_most_once | exactly_once (exactly_once copies each message to "
        "--output-topic in a transaction with its offset)")(
        "output-topic", po::value(&o.output_topic),
        "copy each handled message to this topic (default with exactly_once: <topic>.out)")(
        "instance-id", po::value(&o.instance_id),
        "distinguishes this process's transactional ids (exactly_once; default: the hostname)")(
        "property", po::value(&properties),
        "NAME=VALUE librdkafka consumer property for every trigger, repeatable (e.g. "
        "session.timeout.ms=6000)")(
        "batch", po::value(&o.batch)->default_value(0),
        "batch trigger: up to N messages of a partition per handler call (0: single messages)");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
        std::cout << desc << '\n';
        return std::nullopt;
    }
    po::notify(vm);
    o.sharing = parse_choice("sharing", sharing, sharing_choices);
    o.log_level = parse_choice("log-level", level, level_choices);
    o.ordering = parse_choice("ordering", ordering, ordering_choices);
    o.delivery = parse_choice("delivery", delivery, delivery_choices);
    if (o.max_in_flight < 1)
        throw po::validation_error(po::validation_error::invalid_option_value, "--max-in-flight");
    if (o.fail_every < 0)
        throw po::validation_error(po::validation_error::invalid_option_value, "--fail-every");
    if (o.triggers < 1)
        throw po::validation_error(po::validation_error::invalid_option_value, "--triggers");
    for (const auto& p : properties) {
        const auto equals = p.find('=');
        if (equals == std::string::npos || equals == 0)
            throw po::error(fmt::format("invalid --property '{}': use NAME=VALUE", p));
        o.properties.emplace_back(p.substr(0, equals), p.substr(equals + 1));
    }
    if (topics.empty()) topics.push_back("orders");
    for (const auto& t : topics) o.topics.push_back(parse_topic(t));
    if (o.bootstrap.empty())
        if (const char* env = std::getenv("KAFKA_BOOTSTRAP_SERVERS")) o.bootstrap = env;
    return o;
}

/// Appends handled-message records; shared by handlers on every shard.
class output_file {
  public:
    explicit output_file(const std::string& path) {
        if (!path.empty()) {
            file_.open(path, std::ios::app);
            if (!file_) throw std::runtime_error("cannot open --output file " + path);
        }
    }
    void record(const std::string& trigger, const kt::message& m) {
        if (!file_.is_open()) return;
        json::object line{{"trigger", trigger},
                          {"topic", m.topic()},
                          {"partition", m.partition()},
                          {"offset", m.offset()}};
        line["key"] = m.has_key() ? json::value(m.key()) : json::value(nullptr);
        const auto text = json::serialize(line);
        std::lock_guard lock(mutex_);
        // Flushed per line: a record must survive kill -9 once its offset may be committed.
        file_ << text << '\n' << std::flush;
    }
    ~output_file() {
        if (file_.is_open()) file_.flush();
    }

  private:
    std::mutex mutex_;
    std::ofstream file_;
};

std::string dead_letter_topic(const options& o, const topic_spec& t) {
    if (o.dlq == "off") return {};
    return o.dlq.empty() ? t.name + ".dlq" : o.dlq;
}

std::string output_topic(const options& o, const topic_spec& t) {
    if (!o.output_topic.empty()) return o.output_topic;
    return o.delivery == kt::delivery_guarantee::exactly_once ? t.name + ".out" : std::string{};
}

/// The consumed topics, and the dead letter and output topics the triggers write to.
void create_topics(const options& o, kt::embedded_cluster* cluster) {
    std::optional<kt::admin> admin;
    if (!cluster) admin.emplace(kt::consumer_config{{"bootstrap.servers", o.bootstrap}});
    auto create = [&](const std::string& name, int partitions) {
        if (name.empty()) return;
        if (cluster) {
            cluster->create_topic(name, partitions);
            return;
        }
        try {  // an embedded cluster in another process (kt-cluster) has no CreateTopics
            if (admin->partition_count(name) > 0) return;
        } catch (const kt::kafka_error&) {
        }
        admin->create_topic(name, partitions);
    };
    for (const auto& t : o.topics) {
        create(t.name, t.partitions);
        create(dead_letter_topic(o, t), t.partitions);
        create(output_topic(o, t), t.partitions);
    }
}

/// The demo handler's work: simulated I/O, the --fail-every failure, the --output record, and the
/// copy to the output topic.
struct demo_work {
    const options& o;
    output_file& output;
    std::atomic<std::int64_t>& last_handled;

    asio::awaitable<void> operator()(const std::string& trigger, const kt::message& m,
                                     kt::producer* out, const std::string& out_topic) const {
        if (o.handler_ms > 0) {
            asio::steady_timer timer(co_await asio::this_coro::executor,
                                     std::chrono::milliseconds(o.handler_ms));
            co_await timer.async_wait(asio::use_awaitable);
        }
        last_handled = std::chrono::steady_clock::now().time_since_epoch().count();
        if (o.fail_every > 0 && m.offset() % o.fail_every == 0)
            throw std::runtime_error(
                fmt::format("--fail-every {}: offset {} fails", o.fail_every, m.offset()));
        if (out) {
            kt::record copy{.topic = out_topic,
                            .headers = {{"kt-source-partition", std::to_string(m.partition())},
                                        {"kt-source-offset", std::to_string(m.offset())}}};
            if (m.has_key()) copy.key = std::string(m.key());
            if (m.has_value()) copy.value = std::string(m.value());
            co_await out->send(std::move(copy));
        }
        output.record(trigger, m);
    }
};

void produce(const options& o) {
    kt::producer producer({{"bootstrap.servers", o.bootstrap}, {"linger.ms", "5"}});
    const std::string value(100, 'x');
    for (const auto& t : o.topics)
        for (long i = 0; i < o.produce; ++i)
            producer.produce(t.name, fmt::format("key-{}", i % 1000), value);
    if (!producer.flush(60s) || producer.failed() > 0)
        throw std::runtime_error(fmt::format("producing failed: {} of {} records not delivered",
                                             producer.failed(), o.produce * long(o.topics.size())));
    std::cout << fmt::format("produced {} messages per topic\n", o.produce) << std::flush;
}

/// Samples thread count and live consumers while the host runs.
class sampler {
  public:
    explicit sampler(const kt::trigger_host& host)
        : thread_([this, &host] {
              while (!stop_) {
                  threads_peak_ = std::max(threads_peak_.load(), kt::process_thread_count());
                  consumers_peak_ = std::max(consumers_peak_.load(), host.consumer_count());
                  std::this_thread::sleep_for(100ms);
              }
          }) {}
    ~sampler() { finish(); }
    void finish() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    unsigned threads_peak() const { return threads_peak_; }
    std::size_t consumers_peak() const { return consumers_peak_; }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<unsigned> threads_peak_{0};
    std::atomic<std::size_t> consumers_peak_{0};
    std::thread thread_;
};

void write_summary(const options& o, const kt::trigger_host& host, const sampler& s) {
    json::array triggers;
    for (const auto& t : host.stats()) {
        triggers.push_back(json::object{{"name", t.name},
                                        {"topic", t.topic},
                                        {"handled", t.handled},
                                        {"failed", t.failed},
                                        {"retried", t.retried},
                                        {"dead_lettered", t.dead_lettered}});
        std::cout << fmt::format(
            "trigger {:<24} topic {:<16} handled {:>9} failed {:>6} retried {:>6} dead-lettered "
            "{:>6}\n",
            t.name, t.topic, t.handled, t.failed, t.retried, t.dead_lettered);
    }
    json::object committed;
    for (const auto& [topic, partitions] : host.committed()) {
        json::object per_partition;
        for (auto [p, offset] : partitions) per_partition[std::to_string(p)] = offset;
        committed[topic] = std::move(per_partition);
    }
    std::cout << fmt::format("consumers {}  threads peak {}\n", s.consumers_peak(),
                             s.threads_peak());
    if (o.summary_json.empty()) return;
    json::object summary{{"triggers", std::move(triggers)},
                         {"consumers", s.consumers_peak()},
                         {"threads_peak", s.threads_peak()},
                         {"committed", std::move(committed)}};
    std::ofstream(o.summary_json) << json::serialize(summary) << '\n';
}

int run(const options& o) {
    kt::set_log_level(o.log_level);
    options effective = o;
    std::unique_ptr<kt::embedded_cluster> cluster;  // outlives the host and the runtime
    if (effective.bootstrap.empty()) {
        cluster =
            std::make_unique<kt::embedded_cluster>(kt::embedded_cluster_options{.brokers = 3});
        effective.bootstrap = cluster->bootstrap();
        std::cout << "bootstrap: " << effective.bootstrap << std::endl;
    }
    create_topics(effective, cluster.get());
    if (effective.produce > 0) produce(effective);

    kt::runtime rt{{.shards = effective.shards}};
    kt::trigger_host host{rt, {.sharing = effective.sharing}};
    output_file output(effective.output);
    std::atomic<std::int64_t> last_handled{0};  // steady_clock ticks; 0 until the first message
    const demo_work work{effective, output, last_handled};
    for (const auto& t : effective.topics) {
        for (int i = 0; i < effective.triggers; ++i) {
            const auto name = fmt::format("{}.t{}", t.name, i);
            const auto group = effective.sharing == kt::sharing::off
                                   ? fmt::format("{}.{}", effective.group, name)
                                   : effective.group;
            kt::trigger_options trigger{
                .name = name,
                .topic = t.name,
                .consumer = {{"bootstrap.servers", effective.bootstrap}, {"group.id", group}},
                .ordering = effective.ordering,
                .max_in_flight = effective.max_in_flight,
                .retry = {.max_attempts = effective.retries + 1,
                          .initial_backoff = std::chrono::milliseconds(effective.retry_backoff_ms)},
                .dead_letter = {.enabled = effective.dlq != "off",
                                .topic = dead_letter_topic(effective, t)},
                .delivery = effective.delivery,
                .transactional_id =
                    effective.instance_id.empty()
                        ? std::string{}
                        : fmt::format("kt.{}.{}.{}", group, name, effective.instance_id)};
            for (const auto& [property, value] : effective.properties)
                trigger.consumer.set(property, value);
            const auto out_topic = output_topic(effective, t);
            if (effective.batch > 0) {
                host.add_batch_trigger(
                    std::move(trigger), {.max_messages = effective.batch},
                    [work, name](std::span<const kt::message> batch) -> asio::awaitable<void> {
                        for (const auto& m : batch) co_await work(name, m, nullptr, {});
                    });
            } else if (!out_topic.empty()) {
                host.add_trigger(
                    std::move(trigger),
                    [work, name, out_topic](const kt::message& m, kt::producer& out)
                        -> asio::awaitable<void> { co_await work(name, m, &out, out_topic); });
            } else {
                host.add_trigger(std::move(trigger),
                                 [work, name](const kt::message& m) -> asio::awaitable<void> {
                                     co_await work(name, m, nullptr, {});
                                 });
            }
        }
    }
    sampler samples(host);
    host.start();

    std::atomic<bool> done{false};
    std::thread idle_watch;
    if (effective.exit_when_idle > 0) {
        idle_watch = std::thread([&] {
            const auto idle = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double>(effective.exit_when_idle));
            // Before the first message, allow for the group join (~3 s on the embedded cluster).
            const auto started = std::chrono::steady_clock::now() + 10s;
            while (!done) {
                const auto ticks = last_handled.load();
                const auto last = ticks ? std::chrono::steady_clock::time_point(
                                              std::chrono::steady_clock::duration(ticks))
                                        : started;
                if (std::chrono::steady_clock::now() - last > idle) {
                    rt.request_stop();
                    return;
                }
                std::this_thread::sleep_for(50ms);
            }
        });
    }
    rt.run_until_signal();  // stop hook: host.stop() drains, commits and closes
    done = true;
    if (idle_watch.joinable()) idle_watch.join();
    samples.finish();
    write_summary(effective, host, samples);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        auto o = parse_options(argc, argv);
        return o ? run(*o) : 0;
    } catch (const po::error& e) {
        std::cerr << "kt-host: " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kt-host: error: " << e.what() << '\n';
        return 1;
    }
}
