// `kt-host admin describe|reset`: a consumer group's state, members and lag per partition, and
// resets of its committed offsets (kt::admin), in plain tables.
#include "admin_command.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <cli.hpp>
#include <kt/admin.hpp>

#include "host_cli.hpp"

namespace po = boost::program_options;

namespace {

constexpr const char* usage =
    "usage: kt-host admin describe --group G [--topic T] --bootstrap B [--property N=V]...\n"
    "       kt-host admin reset --group G --topic T --to earliest|latest|timestamp:<ms>|"
    "offset:<n> [--partitions 0,2,5] [--dry-run] --bootstrap B [--property N=V]...";

struct admin_options {
    std::string group, topic, to, partitions;
    bool dry_run = false;
    kt::consumer_config config;
};

/// "0,2,5" → {0, 2, 5}; throws naming the text.
std::vector<std::int32_t> parse_partitions(const std::string& text) {
    std::vector<std::int32_t> result;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        const auto item = text.substr(start, comma - start);
        char* end = nullptr;
        const long p = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || p < 0 || p > INT32_MAX)
            throw po::error(fmt::format(
                "invalid --partitions '{}': use partition numbers separated by commas, e.g. 0,2,5",
                text));
        result.push_back(static_cast<std::int32_t>(p));
        start = comma + 1;
    }
    return result;
}

/// Parses the options after `kt-host admin <action>`; nullopt after --help.
std::optional<admin_options> parse(const std::string& action, int argc, char** argv) {
    admin_options o;
    std::string bootstrap;
    std::vector<std::string> properties;
    po::options_description desc(fmt::format(
        "kt-host admin {}: {}\n{}\nExit codes: 0 done, 1 refused or failed, 2 invalid options, 3 "
        "no bootstrap server answered within 10 s.\nOptions",
        action,
        action == "describe"
            ? "a consumer group's state, members, and per partition its committed offset, high "
              "watermark, lag and owner"
            : "moves a consumer group's committed offsets (refused while the group has members)",
        usage));
    desc.add_options()("help,h", "show this help")(
        "bootstrap", po::value(&bootstrap),
        "Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")(
        "group", po::value(&o.group)->required(), "consumer group id")(
        "topic", po::value(&o.topic),
        action == "describe" ? "only this topic (default: every topic the group committed to or "
                               "is assigned)"
                             : "the topic whose offsets move (required)")(
        "property", po::value(&properties),
        "NAME=VALUE librdkafka client property, repeatable (e.g. security.protocol=SASL_SSL)");
    if (action == "reset")
        desc.add_options()("to", po::value(&o.to)->required(),
                           "earliest | latest | timestamp:<ms since the epoch> (the first record "
                           "at or after it; the high watermark where none is) | offset:<n> "
                           "(clamped to the partition's [low, high] watermarks, with a warning)")(
            "partitions", po::value(&o.partitions), "only these partitions, e.g. 0,2,5")(
            "dry-run", po::bool_switch(&o.dry_run), "print the plan, change nothing");
    const auto parsed = kt::cli::parse(argc, argv, desc);
    if (!parsed) return std::nullopt;
    if (action == "reset" && o.topic.empty()) throw po::error("reset needs --topic");
    if (bootstrap.empty())
        if (const char* env = std::getenv("KAFKA_BOOTSTRAP_SERVERS")) bootstrap = env;
    if (bootstrap.empty())
        throw po::error(
            "admin needs --bootstrap or $KAFKA_BOOTSTRAP_SERVERS (an embedded "
            "cluster would hold no group)");
    for (const auto& [name, value] : kt::cli::name_values("property", properties))
        o.config.set(name, value);
    o.config.set("bootstrap.servers", bootstrap);
    return o;
}

std::string offset_text(const std::optional<std::int64_t>& offset) {
    return offset ? std::to_string(*offset) : "-";
}

void describe(const admin_options& o) {
    kt::admin admin(o.config);
    const auto d = admin.describe_group(o.group, o.topic);
    if (d.state.empty())
        std::cout << fmt::format(
            "group {}  state unknown (the cluster cannot describe groups: no DescribeGroups)\n",
            d.group);
    else
        std::cout << fmt::format("group {}  state {}  type {}  members {}\n", d.group, d.state,
                                 d.type.empty() ? "-" : d.type, d.members.size());
    std::cout << fmt::format("{:<24} {:>9} {:>12} {:>14} {:>10}  {}\n", "TOPIC", "PARTITION",
                             "COMMITTED", "HIGH-WATERMARK", "LAG", "OWNER");
    for (const auto& p : d.partitions)
        std::cout << fmt::format("{:<24} {:>9} {:>12} {:>14} {:>10}  {}\n", p.topic, p.partition,
                                 offset_text(p.committed), p.high_watermark, p.lag,
                                 p.owner
                                     ? fmt::format("{} (client {}, host {})", p.owner->member_id,
                                                   p.owner->client_id, p.owner->host)
                                     : "-");
    if (d.partitions.empty()) std::cout << "(no committed offsets)\n";
}

void reset(const admin_options& o) {
    const auto target = kt::offset_target::parse(o.to);
    const auto partitions =
        o.partitions.empty() ? std::vector<std::int32_t>{} : parse_partitions(o.partitions);
    kt::admin admin(o.config);
    const auto plan = admin.reset_offsets(o.group, o.topic, target, partitions, o.dry_run);
    std::cout << fmt::format("group {}  topic {}  to {}{}\n", o.group, o.topic, o.to,
                             o.dry_run ? "  (dry run: nothing changed)" : "");
    std::cout << fmt::format("{:>9} {:>12} {:>12}\n", "PARTITION", "CURRENT", "NEW");
    for (const auto& p : plan)
        std::cout << fmt::format("{:>9} {:>12} {:>12}\n", p.partition, offset_text(p.current),
                                 p.new_offset);
    for (const auto& p : plan)
        if (p.clamped)
            std::cerr << fmt::format(
                "kt-host: warning: {} lies outside partition {}'s watermarks: clamped to {}\n",
                o.to, p.partition, p.new_offset);
    if (!o.dry_run)
        std::cout << fmt::format("reset {} partition(s) of {} for group {}\n", plan.size(), o.topic,
                                 o.group);
}

}  // namespace

int admin_command(int argc, char** argv) {
    const std::string action = argc > 2 ? argv[2] : "";
    if (action != "describe" && action != "reset") {
        if (action == "--help" || action == "-h") {
            std::cout << usage << '\n';
            return 0;
        }
        throw po::error(fmt::format("invalid admin command '{}': use describe or reset", action));
    }
    // argv[2] (the action) stands where the program name would.
    const auto o = parse(action, argc - 2, argv + 2);
    if (!o) return 0;
    host_cli::require_reachable(o->config);
    if (action == "describe")
        describe(*o);
    else
        reset(*o);
    return 0;
}
