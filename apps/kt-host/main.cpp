// kt-host: CLI host and demo of kafka-triggers. Runs N triggers per topic on a shared (or not)
// consumer, or the triggers of a --config file, optionally produces test data first, and writes
// per-message and summary records.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <cli.hpp>
#include <kt/http.hpp>
#include <kt/kt.hpp>

#include "admin_command.hpp"
#include "demo_handlers.hpp"
#include "host_cli.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
using namespace std::chrono_literals;

namespace {

using namespace host_cli;

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
    unsigned poll_before_sleep_us = 0;
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
    std::string dlq;                                      // empty: <topic>.dlq
    std::vector<std::chrono::milliseconds> retry_topics;  // tier delays; empty: off
    kt::delivery_guarantee delivery = kt::delivery_guarantee::at_least_once;
    std::size_t batch = 0;
    std::string output_topic;  // transform: copy each message there
    std::string instance_id;
    int commit_interval_ms = 1000;
    std::size_t commit_after = 1000;
    bool completion_map = true;
    int metrics_port = -1;                                        // -1: no HTTP endpoints
    std::vector<std::pair<std::string, std::string>> properties;  // extra consumer properties
    std::string config;  // --config FILE: the triggers come from it
    bool print_config = false;
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

/// With --config the file defines the triggers: these options would silently not apply.
void refuse_trigger_options(const po::variables_map& vm) {
    for (const char* name :
         {"group", "triggers", "sharing", "ordering", "max-in-flight", "retries",
          "retry-backoff-ms", "retry-topics", "dlq", "delivery", "batch", "instance-id", "property",
          "group-protocol", "commit-interval-ms", "commit-after", "completion-map"})
        if (vm.count(name) && !vm[name].defaulted())
            throw po::error(
                fmt::format("--{} cannot be combined with --config (set it in the file)", name));
}

std::optional<options> parse_options(int argc, char** argv) {
    options o;
    std::vector<std::string> topics, properties;
    std::string retry_topics;
    std::string sharing = "per_group", level = "info", ordering = "partition",
                delivery = "at_least_once", group_protocol = "classic", completion_map = "on";
    po::options_description desc(
        "kt-host: runs kafka-triggers triggers (the demo host)\n"
        "kt-host admin describe|reset --help: a consumer group's lag, and offset resets.\n"
        "Without --bootstrap or $KAFKA_BOOTSTRAP_SERVERS it starts an embedded 3-broker cluster.\n"
        "Exit codes: 0 stopped gracefully, 1 failed, 2 invalid options, properties or --config "
        "file (refused before anything starts), 3 no bootstrap server answered within 10 s.\n"
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
        "poll-before-sleep", po::value(&o.poll_before_sleep_us)->default_value(0),
        "microseconds an idle shard polls for work before its thread sleeps (lower hop latency, "
        "a busy core while messages trickle in)")(
        "handler-ms", po::value(&o.handler_ms)->default_value(0),
        "each handler awaits an Asio timer this long (simulated I/O)")(
        "produce", po::value(&o.produce)->default_value(0),
        "first produce N keyed 100-byte messages per topic")(
        "output", po::value(&o.output), "append one JSON line per handled message to FILE")(
        "exit-when-idle", po::value(&o.exit_when_idle)->default_value(0),
        "stop gracefully after SEC seconds without messages (before the first message, or while a "
        "consumer waits for its assignment or a trigger for its first message: SEC + 10 s; 0: run "
        "until SIGINT/SIGTERM)")("summary-json", po::value(&o.summary_json),
                                 "write a JSON summary to FILE at exit")(
        "log-level", po::value(&level)->default_value(level), "debug | info | warning | error")(
        "ordering", po::value(&ordering)->default_value(ordering),
        "partition (one at a time per partition) | key (one at a time per key) | none")(
        "max-in-flight", po::value(&o.max_in_flight)->default_value(o.max_in_flight),
        "handlers of a trigger running at once, per shard")(
        "commit-interval-ms", po::value(&o.commit_interval_ms)->default_value(o.commit_interval_ms),
        "the longest a finished offset waits for its commit")(
        "commit-after", po::value(&o.commit_after)->default_value(o.commit_after),
        "commit as soon as this many offsets finished since the last commit (0: only every "
        "--commit-interval-ms)")(
        "completion-map", po::value(&completion_map)->default_value(completion_map),
        "on | off: commits carry what finished above the committed offset, so a restart redoes "
        "only unfinished work")(
        "fail-every", po::value(&o.fail_every)->default_value(0),
        "the handler throws for messages whose offset is a multiple of N (0: never; a retry "
        "topic's record by its kt-original-offset)")(
        "retries", po::value(&o.retries)->default_value(0), "retries after a failed attempt")(
        "retry-backoff-ms", po::value(&o.retry_backoff_ms)->default_value(o.retry_backoff_ms),
        "first retry delay (doubles per attempt, jittered, capped at 10 s)")(
        "retry-topics", po::value(&retry_topics),
        "non-blocking retries through retry topics <topic>.retry.<n>, one tier per delay, e.g. "
        "1s,10s,60s (<n>ms|s|m|h): a message that failed its attempts goes to the next tier and "
        "runs again once its delay has passed, after the last tier to the dead letter topic")(
        "dlq", po::value(&o.dlq),
        "dead letter topic for failed messages, or 'off' (default <topic>.dlq)")(
        "delivery", po::value(&delivery)->default_value(delivery),
        "at_least_once | at_most_once | exactly_once (exactly_once copies each message to "
        "--output-topic in a transaction with its offset)")(
        "output-topic", po::value(&o.output_topic),
        "copy each handled message to this topic (default with exactly_once: <topic>.out)")(
        "instance-id", po::value(&o.instance_id),
        "distinguishes this process's transactional ids (exactly_once; default: the hostname)")(
        "group-protocol", po::value(&group_protocol)->default_value("classic"),
        "consumer group protocol: classic | consumer (KIP-848: the broker assigns partitions "
        "incrementally; Apache Kafka 4 or the embedded cluster)")(
        "property", po::value(&properties),
        "NAME=VALUE librdkafka consumer property for every trigger, repeatable (e.g. "
        "session.timeout.ms=6000)")(
        "metrics-port", po::value(&o.metrics_port),
        "serve GET /metrics (Prometheus), /healthz, /readyz, /triggers and POST "
        "/triggers/{name}/pause|resume on 127.0.0.1:PORT (0: an ephemeral port, printed as "
        "'metrics: 127.0.0.1:<port>')")(
        "batch", po::value(&o.batch)->default_value(0),
        "batch trigger: up to N messages of a partition per handler call (0: single messages)")(
        "config", po::value(&o.config),
        "run the consumers, producers and triggers of this JSON FILE instead (see "
        "apps/kt-host/README-config.md); the trigger options above then come from the file. "
        "Handler names: record (--handler-ms, --fail-every, --output apply), sleep:<ms> (record "
        "after sleeping <ms>), copy (record and copy to --output-topic or <topic>.out), batch "
        "(record each message of a batch). ${KAFKA_BOOTSTRAP_SERVERS} in the file is kt-host's "
        "bootstrap (--bootstrap, that variable, or the embedded cluster); --topic gives partition "
        "counts, --produce writes to the triggers' topics")(
        "print-config",
        "print the --config file's effective configuration as JSON (secrets redacted) and exit");
    const auto parsed = kt::cli::parse(argc, argv, desc);
    if (!parsed) return std::nullopt;
    const auto& vm = *parsed;
    if (!o.config.empty()) refuse_trigger_options(vm);
    o.print_config = vm.count("print-config") != 0;
    if (o.print_config && o.config.empty()) throw po::error("--print-config needs --config");
    o.sharing = parse_choice("sharing", sharing, sharing_choices);
    o.log_level = parse_choice("log-level", level, level_choices);
    o.ordering = parse_choice("ordering", ordering, ordering_choices);
    if (!retry_topics.empty()) {
        try {
            o.retry_topics = kt::parse_retry_delays(retry_topics);
        } catch (const kt::config_error& e) {
            throw po::error(fmt::format("invalid --retry-topics: {}", e.what()));
        }
    }
    o.delivery = parse_choice("delivery", delivery, delivery_choices);
    if (o.max_in_flight < 1)
        throw po::validation_error(po::validation_error::invalid_option_value, "--max-in-flight");
    if (o.commit_interval_ms < 1)
        throw po::validation_error(po::validation_error::invalid_option_value,
                                   "--commit-interval-ms");
    if (completion_map != "on" && completion_map != "off")
        throw po::error(
            fmt::format("invalid --completion-map '{}': use on or off", completion_map));
    o.completion_map = completion_map == "on";
    if (o.fail_every < 0)
        throw po::validation_error(po::validation_error::invalid_option_value, "--fail-every");
    if (o.triggers < 1)
        throw po::validation_error(po::validation_error::invalid_option_value, "--triggers");
    if (group_protocol != "classic" && group_protocol != "consumer")
        throw po::error(
            fmt::format("invalid --group-protocol '{}': use classic or consumer", group_protocol));
    if (group_protocol == "consumer") o.properties.emplace_back("group.protocol", "consumer");
    for (auto& p : kt::cli::name_values("property", properties))
        o.properties.push_back(std::move(p));
    if (o.metrics_port > 65535)
        throw po::error(fmt::format("invalid --metrics-port {}: use 0..65535", o.metrics_port));
    if (topics.empty() && o.config.empty()) topics.push_back("orders");
    for (const auto& t : topics) o.topics.push_back(parse_topic(t));
    if (o.bootstrap.empty())
        if (const char* env = std::getenv("KAFKA_BOOTSTRAP_SERVERS")) o.bootstrap = env;
    return o;
}

std::string dead_letter_topic(const options& o, const topic_spec& t) {
    if (o.dlq == "off") return {};
    return o.dlq.empty() ? t.name + ".dlq" : o.dlq;
}

std::string output_topic(const options& o, const topic_spec& t) {
    if (!o.output_topic.empty()) return o.output_topic;
    return o.delivery == kt::delivery_guarantee::exactly_once ? t.name + ".out" : std::string{};
}

/// The consumed topics, and the dead letter and output topics the CLI's triggers write to.
std::vector<topic_spec> cli_topics(const options& o) {
    std::vector<topic_spec> all;
    for (const auto& t : o.topics) {
        all.push_back(t);
        all.push_back({dead_letter_topic(o, t), t.partitions});
        for (std::size_t tier = 1; tier <= o.retry_topics.size(); ++tier)
            all.push_back({fmt::format("{}.retry.{}", t.name, tier), t.partitions});
        all.push_back({output_topic(o, t), t.partitions});
    }
    return all;
}

/// With --config the triggers' topics are consumed (and produced to); --topic may have given
/// their partition counts.
void add_trigger_topics(std::vector<topic_spec>& topics, const kt::app_config& file) {
    for (const auto& t : file.triggers)
        if (std::none_of(topics.begin(), topics.end(),
                         [&](const topic_spec& known) { return known.name == t.options.topic; }))
            topics.push_back({t.options.topic});
}

/// The consumed topics, and the dead letter, copy and producer topics of the --config file.
std::vector<topic_spec> config_topics(const options& o, const kt::app_config& file) {
    auto partitions_of = [&](const std::string& name) {
        for (const auto& t : o.topics)
            if (t.name == name) return t.partitions;
        return topic_spec{}.partitions;
    };
    std::vector<topic_spec> all = o.topics;
    for (const auto& t : file.triggers) {
        const auto& topic = t.options.topic;
        if (t.options.dead_letter.enabled)
            all.push_back({t.options.dead_letter.topic, partitions_of(topic)});
        for (const auto& retry_topic : kt::retry_topic_names(t.options))
            all.push_back({retry_topic, partitions_of(topic)});
        if (t.handler == "copy")
            all.push_back({copy_topic(o.output_topic, topic), partitions_of(topic)});
    }
    for (const auto& p : file.producers)
        for (const auto& topic : p.topics) all.push_back({topic, partitions_of(topic)});
    return all;
}

void create_topics(const options& o, kt::embedded_cluster* cluster,
                   const std::vector<topic_spec>& topics) {
    std::optional<kt::admin> admin;
    if (!cluster) admin.emplace(kt::consumer_config{{"bootstrap.servers", o.bootstrap}});
    std::set<std::string> created;
    for (const auto& [name, partitions] : topics) {
        if (name.empty() || !created.insert(name).second) continue;
        if (cluster) {
            cluster->create_topic(name, partitions);
            continue;
        }
        try {  // an embedded cluster in another process (kt-cluster) has no CreateTopics
            if (admin->partition_count(name) > 0) continue;
        } catch (const kt::kafka_error&) {
        }
        admin->create_topic(name, partitions);
    }
}

/// The --config file, its values and handler names checked; ${KAFKA_BOOTSTRAP_SERVERS} in it
/// resolves to kt-host's `bootstrap`.
kt::app_config load_host_config(const options& o, const std::string& bootstrap,
                                const demo_work& work) {
    auto file = kt::load_config(o.config, [bootstrap](const std::string& name) {
        return name == "KAFKA_BOOTSTRAP_SERVERS" ? std::optional(bootstrap)
                                                 : kt::process_environment(name);
    });
    if (file.triggers.empty())
        throw kt::config_error("$.triggers", "config: $.triggers: kt-host needs a trigger");
    kt::check_handlers(file, demo_handlers(file, work, o.output_topic));
    return file;
}

/// Writes --produce records to every topic; stops at the first record that failed.
void produce_records(const options& o, kt::producer& producer) {
    const std::string value(100, 'x');
    for (const auto& t : o.topics)
        for (long i = 0; i < o.produce; ++i) {
            if (producer.failed() > 0) return;
            producer.produce(t.name, fmt::format("key-{}", i % 1000), value);
        }
}

/// A record the cluster has not taken within 10 s fails (librdkafka's default waits 300 s), and
/// the first failure ends producing and fails what is still queued: a cluster that dies meanwhile
/// ends the start-up in seconds (a full queue waited those 300 s, then a 60 s flush).
void produce(const options& o) {
    kt::producer producer(
        {{"bootstrap.servers", o.bootstrap}, {"linger.ms", "5"}, {"message.timeout.ms", "10000"}});
    producer.flush_timeout = 1s;  // the destructor's flush, after a failure
    std::cout << fmt::format("producing {} messages per topic\n", o.produce) << std::flush;
    produce_records(o, producer);
    if (producer.failed() > 0 || !producer.flush(15s))
        throw std::runtime_error(fmt::format(
            "producing failed: records not delivered within 10 s ({} failed, {} of {} delivered)",
            producer.failed(), producer.delivered(), o.produce * long(o.topics.size())));
    std::cout << fmt::format("produced {} messages per topic\n", o.produce) << std::flush;
}

/// The CLI triggers' consumer properties, checked before any cluster or connection starts.
void check_cli_properties(const options& o) {
    kt::consumer_config config{{"group.id", o.group}};
    for (const auto& [property, value] : o.properties) config.set(property, value);
    kt::check_consumer_properties(config);
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

/// The CLI's triggers: --triggers per --topic, with the options of the command line.
void add_cli_triggers(kt::trigger_host& host, const options& o, const demo_work& work) {
    for (const auto& t : o.topics) {
        for (int i = 0; i < o.triggers; ++i) {
            const auto name = fmt::format("{}.t{}", t.name, i);
            const auto group =
                o.sharing == kt::sharing::off ? fmt::format("{}.{}", o.group, name) : o.group;
            kt::trigger_options trigger{
                .name = name,
                .topic = t.name,
                .consumer = {{"bootstrap.servers", o.bootstrap}, {"group.id", group}},
                .ordering = o.ordering,
                .max_in_flight = o.max_in_flight,
                .retry = {.max_attempts = o.retries + 1,
                          .initial_backoff = std::chrono::milliseconds(o.retry_backoff_ms)},
                .retry_topics = {.delays = o.retry_topics},
                .dead_letter = {.enabled = o.dlq != "off", .topic = dead_letter_topic(o, t)},
                .delivery = o.delivery,
                .transactional_id = o.instance_id.empty()
                                        ? std::string{}
                                        : fmt::format("kt.{}.{}.{}", group, name, o.instance_id)};
            for (const auto& [property, value] : o.properties)
                trigger.consumer.set(property, value);
            const auto out_topic = output_topic(o, t);
            if (o.batch > 0) {
                host.add_batch_trigger(
                    std::move(trigger), {.max_messages = o.batch},
                    [work, name](std::span<const kt::message> batch) -> asio::awaitable<void> {
                        for (const auto& m : batch) co_await work(name, m, nullptr, {});
                    });
            } else if (!out_topic.empty()) {
                host.add_trigger(std::move(trigger),
                                 [work, name, out_topic](const kt::message& m, kt::producer& out) {
                                     return work(name, m, &out, out_topic);
                                 });
            } else {
                host.add_trigger(std::move(trigger), [work, name](const kt::message& m) {
                    return work(name, m, nullptr, demo_work::no_topic);
                });
            }
        }
    }
}

int run(const options& o) {
    kt::set_log_level(o.log_level);
    output_file output(o.output);
    const demo_work work{std::chrono::milliseconds(o.handler_ms), o.fail_every, output};
    std::optional<kt::app_config> file;
    if (!o.config.empty()) {  // checked before anything starts
        file = load_host_config(o, o.bootstrap.empty() ? "(embedded)" : o.bootstrap, work);
        if (o.print_config) {
            std::cout << kt::dump_redacted(*file) << '\n';
            return 0;
        }
    }
    if (!file) check_cli_properties(o);
    options effective = o;
    std::unique_ptr<kt::embedded_cluster> cluster;  // outlives the host and the runtime
    if (!effective.bootstrap.empty()) {
        require_reachable({{"bootstrap.servers", effective.bootstrap}});
    } else {
        cluster =
            std::make_unique<kt::embedded_cluster>(kt::embedded_cluster_options{.brokers = 3});
        effective.bootstrap = cluster->bootstrap();
        std::cout << "bootstrap: " << effective.bootstrap << std::endl;
        if (file) file = load_host_config(o, effective.bootstrap, work);  // its real address
    }
    if (file) add_trigger_topics(effective.topics, *file);
    create_topics(effective, cluster.get(),
                  file ? config_topics(effective, *file) : cli_topics(effective));
    if (effective.produce > 0) produce(effective);

    kt::runtime rt{
        {.shards = effective.shards,
         .poll_before_sleep = std::chrono::microseconds(effective.poll_before_sleep_us)}};
    kt::trigger_host host{rt, file ? file->host
                                   : kt::host_options{.sharing = effective.sharing,
                                                      .commit_interval = std::chrono::milliseconds(
                                                          effective.commit_interval_ms),
                                                      .commit_after = effective.commit_after,
                                                      .completion_map = effective.completion_map}};
    if (file)
        kt::add_triggers(host, *file, demo_handlers(*file, work, effective.output_topic));
    else
        add_cli_triggers(host, effective, work);
    sampler samples(host);
    host.start();
    if (effective.metrics_port >= 0) {
        const auto port = kt::http::serve(
            rt, host, {.port = static_cast<unsigned short>(effective.metrics_port)});
        std::cout << "metrics: 127.0.0.1:" << port << std::endl;
    }

    std::atomic<bool> done{false};
    std::thread idle_watch;
    if (effective.exit_when_idle > 0) {
        idle_watch = std::thread([&] {
            const auto idle = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double>(effective.exit_when_idle));
            // Before the first message, allow for the group join (~3 s on the embedded cluster).
            const auto started = std::chrono::steady_clock::now() + 10s;
            // A consumer still waiting for its assignment (its join makes the group rebalance, and
            // the embedded cluster refuses commits meanwhile) gets the same allowance: stopping
            // then left its topic unhandled and the other's commits refused (kt_host_cli's
            // per_topic case, 1 s idle, two consumers joining one group one after the other).
            // So does a trigger with no outcome yet while others have some: assigned or not, its
            // first messages can still be on their way (kt_host_cli's "off" case under TSan, a
            // consumer and group per trigger: one of the four had handled nothing when the stop
            // came, and its group committed nothing).
            auto still_starting = [&] {
                const auto consumers = host.consumer_stats();
                const auto triggers = host.stats();
                return std::any_of(consumers.begin(), consumers.end(),
                                   [](const auto& c) { return c.assigned_partitions == 0; }) ||
                       std::any_of(triggers.begin(), triggers.end(), [](const auto& t) {
                           return t.handled + t.failed + t.retried == 0;
                       });
            };
            // Idle: no handler outcome counted since the last look (the triggers' own counters,
            // so the handlers pay nothing for it).
            auto outcomes = [&] {
                std::uint64_t n = 0;
                for (const auto& t : host.stats()) n += t.handled + t.failed + t.retried;
                return n;
            };
            std::uint64_t seen = 0;
            auto last = started;
            while (!done) {
                if (const auto now = outcomes(); now != seen) {
                    seen = now;
                    last = std::chrono::steady_clock::now();
                }
                const auto allowance = seen && still_starting() ? idle + 10s : idle;
                if (std::chrono::steady_clock::now() - last > allowance) {
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
        if (argc > 1 && std::string_view(argv[1]) == "admin") return admin_command(argc, argv);
        auto o = parse_options(argc, argv);
        return o ? run(*o) : 0;
    } catch (const po::error& e) {
        std::cerr << "kt-host: " << e.what() << " (see --help)\n";
        return exit_usage;
    } catch (const kt::config_error& e) {  // names the option or JSON path, never a secret
        std::cerr << "kt-host: " << e.what() << '\n';
        return exit_usage;
    } catch (const unreachable_kafka& e) {
        std::cerr << "kt-host: " << e.what() << '\n';
        return exit_unreachable;
    } catch (const std::exception& e) {
        std::cerr << "kt-host: error: " << e.what() << '\n';
        return exit_failure;
    }
}
