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
};

kt::sharing parse_sharing(const std::string& text) {
    if (text == "per_group") return kt::sharing::per_group;
    if (text == "per_topic") return kt::sharing::per_topic;
    if (text == "off") return kt::sharing::off;
    throw po::error(fmt::format("invalid --sharing '{}': use per_group, per_topic or off", text));
}

kt::log_level parse_level(const std::string& text) {
    for (auto [name, level] :
         {std::pair{"debug", kt::log_level::debug}, std::pair{"info", kt::log_level::info},
          std::pair{"warning", kt::log_level::warning}, std::pair{"error", kt::log_level::error}})
        if (text == name) return level;
    throw po::error(
        fmt::format("invalid --log-level '{}': use debug, info, warning or error", text));
}

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
    std::vector<std::string> topics;
    std::string sharing = "per_group", level = "info";
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
        "log-level", po::value(&level)->default_value(level), "debug | info | warning | error");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
        std::cout << desc << '\n';
        return std::nullopt;
    }
    po::notify(vm);
    o.sharing = parse_sharing(sharing);
    o.log_level = parse_level(level);
    if (o.triggers < 1)
        throw po::validation_error(po::validation_error::invalid_option_value, "--triggers");
    if (topics.empty()) topics.push_back("orders");
    for (const auto& t : topics) o.topics.push_back(parse_topic(t));
    if (o.bootstrap.empty())
        if (const char* env = std::getenv("KAFKA_BOOTSTRAP_SERVERS")) o.bootstrap = env;
    return o;
}

void create_topics(const options& o, kt::embedded_cluster* cluster) {
    if (cluster) {
        for (const auto& t : o.topics) cluster->create_topic(t.name, t.partitions);
        return;
    }
    kt::admin admin({{"bootstrap.servers", o.bootstrap}});
    for (const auto& t : o.topics) admin.create_topic(t.name, t.partitions);
}

void produce(const options& o) {
    kt::producer producer({{"bootstrap.servers", o.bootstrap}, {"linger.ms", "5"}});
    const std::string value(100, 'x');
    for (const auto& t : o.topics)
        for (long i = 0; i < o.produce; ++i)
            producer.send(t.name, fmt::format("key-{}", i % 1000), value);
    if (!producer.flush(60s) || producer.failed() > 0)
        throw std::runtime_error(fmt::format("producing failed: {} of {} records not delivered",
                                             producer.failed(), o.produce * long(o.topics.size())));
    std::cout << fmt::format("produced {} messages per topic\n", o.produce) << std::flush;
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
        file_ << text << '\n';
    }
    ~output_file() {
        if (file_.is_open()) file_.flush();
    }

  private:
    std::mutex mutex_;
    std::ofstream file_;
};

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
        triggers.push_back(json::object{
            {"name", t.name}, {"topic", t.topic}, {"handled", t.handled}, {"failed", t.failed}});
        std::cout << fmt::format("trigger {:<24} topic {:<16} handled {:>9} failed {:>6}\n", t.name,
                                 t.topic, t.handled, t.failed);
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
    for (const auto& t : effective.topics) {
        for (int i = 0; i < effective.triggers; ++i) {
            const auto name = fmt::format("{}.t{}", t.name, i);
            const auto group = effective.sharing == kt::sharing::off
                                   ? fmt::format("{}.{}", effective.group, name)
                                   : effective.group;
            host.add_trigger(
                {.name = name,
                 .topic = t.name,
                 .consumer = {{"bootstrap.servers", effective.bootstrap}, {"group.id", group}}},
                [&, name,
                 ms = effective.handler_ms](const kt::message& m) -> asio::awaitable<void> {
                    if (ms > 0) {
                        asio::steady_timer timer(co_await asio::this_coro::executor,
                                                 std::chrono::milliseconds(ms));
                        co_await timer.async_wait(asio::use_awaitable);
                    }
                    output.record(name, m);
                    last_handled = std::chrono::steady_clock::now().time_since_epoch().count();
                });
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
