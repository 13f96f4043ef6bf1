// Unit tests of the Prometheus and JSON renderings of a metrics_snapshot, read back by a small
// exposition parser and by Boost.JSON.
#define BOOST_TEST_MODULE metrics_render
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include <kt/metrics.hpp>

namespace json = boost::json;

namespace {

// ---- a small parser of the text exposition format ----

struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    std::string value;  // as written, so that "-1" or "1e+20" can be checked exactly
};

struct exposition {
    std::vector<sample> samples;
    std::vector<std::string> type_lines;       // the family of every # TYPE line, in order
    std::map<std::string, std::string> types;  // family -> counter | gauge | histogram
    std::map<std::string, std::string> help;
};

/// Reads `"..."` at `pos` (just after the opening quote), undoing \\, \" and \n.
std::string read_label_value(const std::string& line, std::size_t& pos) {
    std::string value;
    while (pos < line.size() && line[pos] != '"') {
        char c = line[pos++];
        if (c == '\\') {
            if (pos >= line.size()) throw std::runtime_error("dangling escape: " + line);
            const char escaped = line[pos++];
            if (escaped == 'n')
                c = '\n';
            else if (escaped == '\\' || escaped == '"')
                c = escaped;
            else
                throw std::runtime_error("unknown escape in: " + line);
        }
        value += c;
    }
    if (pos >= line.size()) throw std::runtime_error("unterminated label value: " + line);
    ++pos;  // closing quote
    return value;
}

sample parse_sample(const std::string& line) {
    sample s;
    std::size_t pos = line.find_first_of("{ ");
    if (pos == std::string::npos) throw std::runtime_error("no value: " + line);
    s.name = line.substr(0, pos);
    if (line[pos] == '{') {
        ++pos;
        while (line.at(pos) != '}') {
            const auto equals = line.find('=', pos);
            const auto name = line.substr(pos, equals - pos);
            if (line.at(equals + 1) != '"') throw std::runtime_error("unquoted label: " + line);
            pos = equals + 2;
            if (!s.labels.emplace(name, read_label_value(line, pos)).second)
                throw std::runtime_error("duplicate label: " + line);
            if (line.at(pos) == ',') ++pos;
        }
        ++pos;
    }
    if (line.at(pos) != ' ') throw std::runtime_error("no space before the value: " + line);
    s.value = line.substr(pos + 1);
    if (s.value.empty() || s.value.find(' ') != std::string::npos)
        throw std::runtime_error("bad value (or a timestamp): " + line);
    return s;
}

exposition parse_exposition(const std::string& text) {
    BOOST_REQUIRE(text.empty() || text.back() == '\n');
    exposition e;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("# TYPE ", 0) == 0) {
            std::istringstream words(line.substr(7));
            std::string family, type;
            words >> family >> type;
            e.type_lines.push_back(family);
            e.types[family] = type;
        } else if (line.rfind("# HELP ", 0) == 0) {
            const auto rest = line.substr(7);
            const auto space = rest.find(' ');
            e.help[rest.substr(0, space)] = rest.substr(space + 1);
        } else {
            BOOST_REQUIRE_MESSAGE(!line.empty() && line[0] != '#', "unexpected line: " << line);
            e.samples.push_back(parse_sample(line));
        }
    }
    return e;
}

/// The family a sample belongs to: its name without a histogram suffix.
std::string family_of(const exposition& e, const std::string& name) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (name.size() > s.size() && name.ends_with(s)) {
            const auto base = name.substr(0, name.size() - s.size());
            if (e.types.contains(base) && e.types.at(base) == "histogram") return base;
        }
    }
    return name;
}

std::vector<const sample*> find_all(const exposition& e, const std::string& name,
                                    const std::map<std::string, std::string>& labels = {}) {
    std::vector<const sample*> found;
    for (const auto& s : e.samples) {
        if (s.name != name) continue;
        const bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& label) {
            auto it = s.labels.find(label.first);
            return it != s.labels.end() && it->second == label.second;
        });
        if (match) found.push_back(&s);
    }
    return found;
}

const std::string absent = "(absent)";

/// The value text of the one sample `name{labels...}`, or `absent`.
std::string value_of(const exposition& e, const std::string& name,
                     const std::map<std::string, std::string>& labels = {}) {
    const auto found = find_all(e, name, labels);
    BOOST_REQUIRE_MESSAGE(found.size() <= 1, name << ": " << found.size() << " samples match");
    return found.empty() ? absent : found.front()->value;
}

// ---- the snapshot under test ----

const std::string tricky_name = "odd \"name\" \\ with\nnewline";

kt::metrics_snapshot sample_snapshot() {
    kt::metrics_snapshot s;
    s.taken = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
    s.process_threads = 17;

    kt::trigger_metrics billing{.name = "billing",
                                .topic = "orders",
                                .group = "svc",
                                .handled = 1234,
                                .failed = 3,
                                .retried = 7,
                                .dead_lettered = 2,
                                .in_flight = 5,
                                .oldest_in_flight_seconds = 0.25,
                                .paused = true};
    billing.handler_duration.counts[0] = 10;  // <= 0.5 ms
    billing.handler_duration.counts[3] = 5;   // <= 5 ms
    billing.handler_duration.counts[14] = 1;  // +Inf
    billing.handler_duration.count = 16;
    billing.handler_duration.sum_seconds = 12.5;
    billing.partitions = {{.topic = "orders",
                           .partition = 0,
                           .backlog = 4,
                           .paused = true,
                           .committed = 100,
                           .high_watermark = 130,
                           .lag = 30},
                          {.topic = "orders",
                           .partition = 1,
                           .backlog = 0,
                           .paused = false,
                           .committed = -1,
                           .high_watermark = -1,
                           .lag = -1}};
    s.triggers.push_back(billing);
    s.triggers.push_back({.name = tricky_name, .topic = "audit", .group = "svc", .handled = 9});

    kt::consumer_metrics consumer{.group = "svc",
                                  .client = "rdkafka#consumer-3",
                                  .triggers = 2,
                                  .topics = {"orders", "audit"},
                                  .assigned_partitions = 6,
                                  .rebalances = 4,
                                  .rebalance_seconds_total = 1.5,
                                  .last_rebalance_seconds = 0.5,
                                  .recreations = 1,
                                  .recovering = false,
                                  .threads = 6,
                                  .consumer_lag = 42,
                                  .rxmsgs = 5000,
                                  .fetchq_cnt = 12,
                                  .consume_rate = 100.5,
                                  .lag_rate = -2,
                                  .group_state = "steady"};
    consumer.brokers = {{.name = "127.0.0.1:9092/1", .state = "UP", .rtt_avg_seconds = 0.002},
                        {.name = "127.0.0.1:9093/2", .state = "DOWN", .rtt_avg_seconds = 0}};
    s.consumers.push_back(consumer);
    s.producers.push_back(
        {.name = "rdkafka#producer-1", .delivered = 77, .failed = 1, .queue_depth = 3});
    s.scaling.push_back({.group = "svc",
                         .partitions = 8,
                         .members = 2,
                         .recommended_members = 4,
                         .lag = 42,
                         .consume_rate = 100.5,
                         .lag_rate = 3,
                         .reason = "lag growing"});
    s.health = {.ready = true, .healthy = false, .reasons = {"consumer lag 200000 > 100000"}};
    return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(prometheus_text_parses_back_to_the_snapshot_values) {
    const auto e = parse_exposition(kt::to_prometheus(sample_snapshot()));
    const std::map<std::string, std::string> billing{{"trigger", "billing"}, {"topic", "orders"}};
    BOOST_TEST(value_of(e, "kt_trigger_handled_total", billing) == "1234");
    BOOST_TEST(value_of(e, "kt_trigger_failed_total", billing) == "3");
    BOOST_TEST(value_of(e, "kt_trigger_retried_total", billing) == "7");
    BOOST_TEST(value_of(e, "kt_trigger_dead_lettered_total", billing) == "2");
    BOOST_TEST(value_of(e, "kt_trigger_in_flight", billing) == "5");
    BOOST_TEST(value_of(e, "kt_trigger_oldest_in_flight_seconds", billing) == "0.25");
    BOOST_TEST(value_of(e, "kt_trigger_paused", billing) == "1");

    const std::map<std::string, std::string> p0{{"trigger", "billing"}, {"partition", "0"}};
    BOOST_TEST(value_of(e, "kt_partition_backlog", p0) == "4");
    BOOST_TEST(value_of(e, "kt_partition_paused", p0) == "1");
    BOOST_TEST(value_of(e, "kt_partition_committed_offset", p0) == "100");
    BOOST_TEST(value_of(e, "kt_partition_high_watermark", p0) == "130");
    BOOST_TEST(value_of(e, "kt_partition_lag", p0) == "30");

    const std::map<std::string, std::string> consumer{{"group", "svc"},
                                                      {"consumer", "rdkafka#consumer-3"}};
    BOOST_TEST(value_of(e, "kt_consumer_triggers", consumer) == "2");
    BOOST_TEST(value_of(e, "kt_consumer_assigned_partitions", consumer) == "6");
    BOOST_TEST(value_of(e, "kt_consumer_rebalances_total", consumer) == "4");
    BOOST_TEST(value_of(e, "kt_consumer_rebalance_seconds_total", consumer) == "1.5");
    BOOST_TEST(value_of(e, "kt_consumer_recreations_total", consumer) == "1");
    BOOST_TEST(value_of(e, "kt_consumer_recovering", consumer) == "0");
    BOOST_TEST(value_of(e, "kt_consumer_threads", consumer) == "6");
    BOOST_TEST(value_of(e, "kt_consumer_lag", consumer) == "42");
    BOOST_TEST(value_of(e, "kt_consumer_fetched_messages_total", consumer) == "5000");
    BOOST_TEST(value_of(e, "kt_consumer_fetch_queue_messages", consumer) == "12");
    BOOST_TEST(value_of(e, "kt_consumer_broker_rtt_seconds", {{"broker", "127.0.0.1:9092/1"}}) ==
               "0.002");
    BOOST_TEST(value_of(e, "kt_consumer_broker_up", {{"broker", "127.0.0.1:9092/1"}}) == "1");
    BOOST_TEST(value_of(e, "kt_consumer_broker_up", {{"broker", "127.0.0.1:9093/2"}}) == "0");

    const std::map<std::string, std::string> producer{{"producer", "rdkafka#producer-1"}};
    BOOST_TEST(value_of(e, "kt_producer_delivered_total", producer) == "77");
    BOOST_TEST(value_of(e, "kt_producer_failed_total", producer) == "1");
    BOOST_TEST(value_of(e, "kt_producer_queue_depth", producer) == "3");

    BOOST_TEST(value_of(e, "kt_process_threads") == "17");
    BOOST_TEST(value_of(e, "kt_scaling_recommended_members", {{"group", "svc"}}) == "4");
    BOOST_TEST(value_of(e, "kt_scaling_members", {{"group", "svc"}}) == "2");
    BOOST_TEST(value_of(e, "kt_health_ready") == "1");
    BOOST_TEST(value_of(e, "kt_health_healthy") == "0");
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative_and_end_in_inf) {
    const auto e = parse_exposition(kt::to_prometheus(sample_snapshot()));
    const std::map<std::string, std::string> billing{{"trigger", "billing"}};
    BOOST_TEST(e.types.at("kt_trigger_handler_duration_seconds") == "histogram");
    const auto buckets = find_all(e, "kt_trigger_handler_duration_seconds_bucket", billing);
    BOOST_REQUIRE_EQUAL(buckets.size(), kt::duration_histogram::bounds.size() + 1);
    std::vector<std::string> le, counts;
    for (const auto* b : buckets) {
        le.push_back(b->labels.at("le"));
        counts.push_back(b->value);
    }
    const std::vector<std::string> expected_le{"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                               "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                               "1",      "2.5",   "5",      "10",    "+Inf"};
    const std::vector<std::string> expected_counts{"10", "10", "10", "15", "15", "15", "15", "15",
                                                   "15", "15", "15", "15", "15", "15", "16"};
    BOOST_TEST(le == expected_le, boost::test_tools::per_element());
    BOOST_TEST(counts == expected_counts, boost::test_tools::per_element());
    BOOST_TEST(value_of(e, "kt_trigger_handler_duration_seconds_count", billing) == "16");
    BOOST_TEST(value_of(e, "kt_trigger_handler_duration_seconds_sum", billing) == "12.5");
}

BOOST_AUTO_TEST_CASE(label_values_are_escaped_and_read_back_unchanged) {
    const auto text = kt::to_prometheus(sample_snapshot());
    BOOST_TEST(text.find(R"(trigger="odd \"name\" \\ with\nnewline")") != std::string::npos);
    const auto e = parse_exposition(text);
    BOOST_TEST(value_of(e, "kt_trigger_handled_total", {{"trigger", tricky_name}}) == "9");
}

BOOST_AUTO_TEST_CASE(each_family_has_one_help_and_type_before_its_contiguous_samples) {
    const auto e = parse_exposition(kt::to_prometheus(sample_snapshot()));
    const std::set<std::string> distinct(e.type_lines.begin(), e.type_lines.end());
    BOOST_TEST(distinct.size() == e.type_lines.size());
    BOOST_TEST(e.help.size() == e.types.size());
    std::vector<std::string> family_order;  // families as their samples appear
    for (const auto& s : e.samples) {
        const auto family = family_of(e, s.name);
        BOOST_TEST_REQUIRE(e.types.contains(family), s.name << " has no TYPE");
        if (family_order.empty() || family_order.back() != family) family_order.push_back(family);
        if (e.types.at(family) == "counter") BOOST_TEST(family.ends_with("_total"));
    }
    BOOST_TEST(family_order == e.type_lines, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(unknown_offsets_are_left_out_not_written_as_minus_one) {
    const auto e = parse_exposition(kt::to_prometheus(sample_snapshot()));
    for (const auto& s : e.samples) BOOST_TEST(s.value != "-1", s.name);
    const std::map<std::string, std::string> p1{{"trigger", "billing"}, {"partition", "1"}};
    BOOST_TEST(value_of(e, "kt_partition_committed_offset", p1) == absent);
    BOOST_TEST(value_of(e, "kt_partition_high_watermark", p1) == absent);
    BOOST_TEST(value_of(e, "kt_partition_lag", p1) == absent);
    BOOST_TEST(value_of(e, "kt_partition_backlog", p1) == "0");
}

BOOST_AUTO_TEST_CASE(an_empty_snapshot_renders_only_process_and_health) {
    const auto e = parse_exposition(kt::to_prometheus({}));
    const std::vector<std::string> families{"kt_process_threads", "kt_health_ready",
                                            "kt_health_healthy"};
    BOOST_TEST(e.type_lines == families, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(json_is_a_faithful_tree_of_the_snapshot) {
    const auto root = json::parse(kt::to_json(sample_snapshot())).as_object();
    BOOST_TEST(root.at("taken_unix_ms").to_number<std::int64_t>() == 1'700'000'000'123);
    BOOST_TEST(root.at("process_threads").to_number<int>() == 17);

    const auto& triggers = root.at("triggers").as_array();
    BOOST_REQUIRE_EQUAL(triggers.size(), 2u);
    const auto& billing = triggers[0].as_object();
    BOOST_TEST(billing.at("name").as_string() == "billing");
    BOOST_TEST(billing.at("group").as_string() == "svc");
    BOOST_TEST(billing.at("handled").to_number<int>() == 1234);
    BOOST_TEST(billing.at("dead_lettered").to_number<int>() == 2);
    BOOST_TEST(billing.at("paused").as_bool());
    BOOST_TEST(billing.at("oldest_in_flight_seconds").to_number<double>() == 0.25);
    const auto& histogram = billing.at("handler_duration").as_object();
    BOOST_TEST(histogram.at("counts").as_array().size() == 15u);
    BOOST_TEST(histogram.at("counts").as_array()[3].to_number<int>() == 5);
    BOOST_TEST(histogram.at("count").to_number<int>() == 16);
    const auto& partitions = billing.at("partitions").as_array();
    BOOST_REQUIRE_EQUAL(partitions.size(), 2u);
    BOOST_TEST(partitions[0].at("lag").to_number<int>() == 30);
    BOOST_TEST(partitions[1].at("committed").is_null());  // unknown
    BOOST_TEST(partitions[1].at("lag").is_null());
    BOOST_TEST(triggers[1].at("name").as_string() == tricky_name);

    const auto& consumer = root.at("consumers").as_array().at(0).as_object();
    BOOST_TEST(consumer.at("client").as_string() == "rdkafka#consumer-3");
    BOOST_TEST(consumer.at("topics").as_array().size() == 2u);
    BOOST_TEST(consumer.at("group_state").as_string() == "steady");
    BOOST_TEST(consumer.at("lag_rate").to_number<double>() == -2);
    BOOST_TEST(consumer.at("brokers").as_array()[1].at("state").as_string() == "DOWN");

    BOOST_TEST(root.at("producers").as_array()[0].at("delivered").to_number<int>() == 77);
    const auto& scaling = root.at("scaling").as_array()[0].as_object();
    BOOST_TEST(scaling.at("recommended_members").to_number<int>() == 4);
    BOOST_TEST(scaling.at("reason").as_string() == "lag growing");
    const auto& health = root.at("health").as_object();
    BOOST_TEST(health.at("ready").as_bool());
    BOOST_TEST(!health.at("healthy").as_bool());
    BOOST_TEST(health.at("reasons").as_array()[0].as_string() == "consumer lag 200000 > 100000");
}
