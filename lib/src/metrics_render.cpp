// Renders a metrics_snapshot as Prometheus text exposition (format 0.0.4) and as JSON.
#include <kt/metrics.hpp>

#include <cmath>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

namespace json = boost::json;

namespace kt {
namespace {

// ---- Prometheus text exposition ----

using label_set = std::vector<std::pair<std::string_view, std::string>>;

std::string escape_label_value(std::string_view value) {
    std::string escaped;
    escaped.reserve(value.size());
    for (char c : value) {
        switch (c) {
            case '\\':
                escaped += "\\\\";
                break;
            case '"':
                escaped += "\\\"";
                break;
            case '\n':
                escaped += "\\n";
                break;
            default:
                escaped += c;
        }
    }
    return escaped;
}

std::string format_number(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", value);  // shortest text that reads back as the same double
}

/// Sample text of a bool (0/1), an integer (exact) or a double.
template <typename T>
std::string sample_text(T value) {
    if constexpr (std::is_same_v<T, bool>)
        return value ? "1" : "0";
    else if constexpr (std::is_floating_point_v<T>)
        return format_number(value);
    else
        return std::to_string(value);
}

/// -1 means "not known yet" in the snapshot; such samples are left out rather than exported.
std::optional<std::int64_t> known(std::int64_t value) {
    return value < 0 ? std::nullopt : std::optional(value);
}

/// The sample text of a value; nullopt for an unknown (empty optional) one.
template <typename T>
std::optional<std::string> text_of(const T& value) {
    return sample_text(value);
}
template <typename T>
std::optional<std::string> text_of(const std::optional<T>& value) {
    return value ? std::optional(sample_text(*value)) : std::nullopt;
}

class exposition_writer {
  public:
    /// One family: HELP and TYPE once, then a sample per item whose value is known. A family
    /// without samples is left out entirely.
    template <typename Items, typename LabelsOf, typename ValueOf>
    void family(std::string_view name, std::string_view type, std::string_view help,
                const Items& items, LabelsOf labels_of, ValueOf value_of) {
        bool header_written = false;
        for (const auto& item : items) {
            const auto text = text_of(value_of(item));
            if (!text) continue;
            if (!std::exchange(header_written, true)) header(name, type, help);
            sample(name, labels_of(item), *text);
        }
    }

    /// A histogram family: cumulative `_bucket{le=..}` samples ending in le="+Inf", `_sum`,
    /// `_count`.
    template <typename Items, typename LabelsOf, typename HistogramOf>
    void histogram(std::string_view name, std::string_view help, const Items& items,
                   LabelsOf labels_of, HistogramOf histogram_of) {
        bool header_written = false;
        for (const auto& item : items) {
            if (!std::exchange(header_written, true)) header(name, "histogram", help);
            const duration_histogram& h = histogram_of(item);
            const label_set labels = labels_of(item);
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < h.counts.size(); ++i) {
                cumulative += h.counts[i];
                auto bucket_labels = labels;
                bucket_labels.emplace_back(
                    "le", i < h.bounds.size() ? format_number(h.bounds[i]) : std::string("+Inf"));
                sample(fmt::format("{}_bucket", name), bucket_labels, sample_text(cumulative));
            }
            sample(fmt::format("{}_sum", name), labels, sample_text(h.sum_seconds));
            // The counters are read while handlers finish, so `count` may be off by a few from
            // the buckets; the format requires _count to equal the +Inf bucket.
            sample(fmt::format("{}_count", name), labels, sample_text(cumulative));
        }
    }

    std::string take() && { return std::move(text_); }

  private:
    void header(std::string_view name, std::string_view type, std::string_view help) {
        text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }

    void sample(std::string_view name, const label_set& labels, const std::string& value) {
        text_ += name;
        if (!labels.empty()) {
            text_ += '{';
            for (std::size_t i = 0; i < labels.size(); ++i)
                text_ += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first,
                                     escape_label_value(labels[i].second));
            text_ += '}';
        }
        text_ += fmt::format(" {}\n", value);
    }

    std::string text_;
};

struct partition_of_trigger {
    const trigger_metrics* trigger;
    const partition_metrics* partition;
};

struct broker_of_consumer {
    const consumer_metrics* consumer;
    const broker_metrics* broker;
};

/// Every (parent, child) pair as `Pair`, e.g. each trigger's partitions.
template <typename Pair, typename Parent, typename Child>
std::vector<Pair> flatten(const std::vector<Parent>& parents,
                          std::vector<Child> Parent::*children) {
    std::vector<Pair> all;
    for (const auto& parent : parents)
        for (const auto& child : parent.*children) all.push_back({&parent, &child});
    return all;
}

label_set trigger_labels(const trigger_metrics& t) {
    return {{"trigger", t.name}, {"topic", t.topic}};
}

label_set partition_labels(const partition_of_trigger& p) {
    return {{"trigger", p.trigger->name},
            {"topic", p.partition->topic},
            {"partition", std::to_string(p.partition->partition)}};
}

label_set consumer_labels(const consumer_metrics& c) {
    return {{"group", c.group}, {"consumer", c.client}};
}

label_set broker_labels(const broker_of_consumer& b) {
    auto labels = consumer_labels(*b.consumer);
    labels.emplace_back("broker", b.broker->name);
    return labels;
}

void write_trigger_families(exposition_writer& out, const std::vector<trigger_metrics>& triggers) {
    auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                      auto value_of) {
        out.family(name, type, help, triggers, trigger_labels, value_of);
    };
    family("kt_trigger_handled_total", "counter", "Messages whose handler returned normally.",
           [](const trigger_metrics& t) { return t.handled; });
    family("kt_trigger_failed_total", "counter", "Messages that failed for good (after retries).",
           [](const trigger_metrics& t) { return t.failed; });
    family("kt_trigger_retried_total", "counter", "Handler retry attempts.",
           [](const trigger_metrics& t) { return t.retried; });
    family("kt_trigger_dead_lettered_total", "counter",
           "Failed messages written to the dead letter topic.",
           [](const trigger_metrics& t) { return t.dead_lettered; });
    family("kt_trigger_in_flight", "gauge", "Handlers running now.",
           [](const trigger_metrics& t) { return t.in_flight; });
    family("kt_trigger_oldest_in_flight_seconds", "gauge",
           "Age of the longest-running handler (0: none running).",
           [](const trigger_metrics& t) { return t.oldest_in_flight_seconds; });
    family("kt_trigger_paused", "gauge", "1 while the trigger is paused by pause_trigger().",
           [](const trigger_metrics& t) { return t.paused; });
    out.histogram(
        "kt_trigger_handler_duration_seconds", "Handler durations, retries included.", triggers,
        trigger_labels,
        [](const trigger_metrics& t) -> const duration_histogram& { return t.handler_duration; });
}

void write_partition_families(exposition_writer& out,
                              const std::vector<trigger_metrics>& triggers) {
    const auto partitions = flatten<partition_of_trigger>(triggers, &trigger_metrics::partitions);
    auto family = [&](std::string_view name, std::string_view help, auto value_of) {
        out.family(name, "gauge", help, partitions, partition_labels, value_of);
    };
    family("kt_partition_backlog", "The trigger's delivered but unfinished messages.",
           [](const partition_of_trigger& p) { return p.partition->backlog; });
    family("kt_partition_paused", "1 while the partition is held back by backpressure.",
           [](const partition_of_trigger& p) { return p.partition->paused; });
    family("kt_partition_committed_offset", "Broker-acknowledged committed offset.",
           [](const partition_of_trigger& p) { return known(p.partition->committed); });
    family("kt_partition_high_watermark", "Last known end offset of the partition.",
           [](const partition_of_trigger& p) { return known(p.partition->high_watermark); });
    family("kt_partition_lag", "High watermark minus committed offset.",
           [](const partition_of_trigger& p) { return known(p.partition->lag); });
    family("kt_partition_completion_map_bytes",
           "Bytes of the completion map (what finished above the committed offset) in the last "
           "commit.",
           [](const partition_of_trigger& p) { return p.partition->completion_map_bytes; });
}

void write_consumer_families(exposition_writer& out,
                             const std::vector<consumer_metrics>& consumers) {
    auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                      auto value_of) {
        out.family(name, type, help, consumers, consumer_labels, value_of);
    };
    family("kt_consumer_triggers", "gauge", "Triggers sharing this consumer.",
           [](const consumer_metrics& c) { return c.triggers; });
    family("kt_consumer_assigned_partitions", "gauge", "Partitions this member holds.",
           [](const consumer_metrics& c) { return c.assigned_partitions; });
    family("kt_consumer_rebalances_total", "counter", "Rebalance callbacks (assign, revoke, lost).",
           [](const consumer_metrics& c) { return c.rebalances; });
    family("kt_consumer_rebalance_seconds_total", "counter",
           "Time spent in rebalance callbacks, revoke drains included.",
           [](const consumer_metrics& c) { return c.rebalance_seconds_total; });
    family("kt_consumer_last_rebalance_seconds", "gauge",
           "Duration of the last rebalance callback.",
           [](const consumer_metrics& c) { return c.last_rebalance_seconds; });
    family("kt_consumer_recreations_total", "counter",
           "Clients replaced after a fatal error or outage.",
           [](const consumer_metrics& c) { return c.recreations; });
    family("kt_consumer_commits_total", "counter", "Commit requests sent.",
           [](const consumer_metrics& c) { return c.commits; });
    family("kt_consumer_recovering", "gauge", "1 while no broker is reachable or being recreated.",
           [](const consumer_metrics& c) { return c.recovering; });
    family("kt_consumer_threads", "gauge", "Poll thread plus librdkafka's threads.",
           [](const consumer_metrics& c) { return c.threads; });
    family("kt_consumer_poll_stalled_seconds", "gauge",
           "How long the poll thread has not turned, beyond a bounded step it is in.",
           [](const consumer_metrics& c) { return c.poll_stalled_seconds; });
    family("kt_consumer_completion_map_budget_bytes", "gauge",
           "Bytes a partition's completion map may take (75 % of offset.metadata.max.bytes).",
           [](const consumer_metrics& c) { return c.completion_map_budget_bytes; });
    family("kt_consumer_delivery_stalled_seconds", "gauge",
           "Longest time a partition with messages waiting delivered none.",
           [](const consumer_metrics& c) { return c.delivery_stalled_seconds; });
    family("kt_consumer_lag", "gauge", "Consumer lag summed over assigned partitions.",
           [](const consumer_metrics& c) { return c.consumer_lag; });
    family("kt_consumer_fetched_messages_total", "counter",
           "Messages fetched since the client started (librdkafka rxmsgs).",
           [](const consumer_metrics& c) { return c.rxmsgs; });
    family("kt_consumer_fetch_queue_messages", "gauge",
           "Fetched messages waiting in librdkafka's queues (fetchq_cnt).",
           [](const consumer_metrics& c) { return c.fetchq_cnt; });

    const auto brokers = flatten<broker_of_consumer>(consumers, &consumer_metrics::brokers);
    out.family("kt_consumer_broker_rtt_seconds", "gauge", "Average broker round-trip time.",
               brokers, broker_labels,
               [](const broker_of_consumer& b) { return b.broker->rtt_avg_seconds; });
    out.family("kt_consumer_broker_up", "gauge", "1 while the broker connection is UP.", brokers,
               broker_labels, [](const broker_of_consumer& b) { return b.broker->state == "UP"; });
}

void write_producer_families(exposition_writer& out,
                             const std::vector<producer_metrics>& producers) {
    auto labels = [](const producer_metrics& p) { return label_set{{"producer", p.name}}; };
    out.family("kt_producer_delivered_total", "counter", "Records acknowledged by the brokers.",
               producers, labels, [](const producer_metrics& p) { return p.delivered; });
    out.family("kt_producer_failed_total", "counter", "Records that failed to be delivered.",
               producers, labels, [](const producer_metrics& p) { return p.failed; });
    out.family("kt_producer_queue_depth", "gauge", "Records queued or in flight to the brokers.",
               producers, labels, [](const producer_metrics& p) { return p.queue_depth; });
}

void write_scaling_families(exposition_writer& out, const std::vector<scaling_advice>& scaling) {
    auto labels = [](const scaling_advice& s) { return label_set{{"group", s.group}}; };
    out.family("kt_scaling_recommended_members", "gauge",
               "Recommended group size (never more than partitions).", scaling, labels,
               [](const scaling_advice& s) { return s.recommended_members; });
    out.family("kt_scaling_members", "gauge", "Estimated current group size.", scaling, labels,
               [](const scaling_advice& s) { return s.members; });
    out.family("kt_scaling_partitions", "gauge", "Partitions of the group's topics.", scaling,
               labels, [](const scaling_advice& s) { return s.partitions; });
}

void write_process_families(exposition_writer& out, const metrics_snapshot& snapshot) {
    const std::vector<const metrics_snapshot*> process{&snapshot};
    auto no_labels = [](const metrics_snapshot*) { return label_set{}; };
    out.family("kt_process_threads", "gauge", "Threads of this process.", process, no_labels,
               [](const metrics_snapshot* s) { return s->process_threads; });
    out.family("kt_health_ready", "gauge", "1 when every consumer is assigned or waiting.", process,
               no_labels, [](const metrics_snapshot* s) { return s->health.ready; });
    out.family("kt_health_healthy", "gauge",
               "1 when ready and nothing is recovering, stuck or lagging.", process, no_labels,
               [](const metrics_snapshot* s) { return s->health.healthy; });
}

// ---- JSON ----

template <typename Items, typename ToValue>
json::array array_of(const Items& items, ToValue to_value) {
    json::array array;
    for (const auto& item : items) array.emplace_back(to_value(item));
    return array;
}

json::value histogram_json(const duration_histogram& h) {
    return json::object{{"bounds_seconds", json::value_from(h.bounds)},
                        {"counts", json::value_from(h.counts)},
                        {"count", h.count},
                        {"sum_seconds", h.sum_seconds}};
}

/// -1 (unknown) becomes null.
json::value offset_json(std::int64_t offset) {
    return offset < 0 ? json::value(nullptr) : json::value(offset);
}

json::value partition_json(const partition_metrics& p) {
    return json::object{{"topic", p.topic},
                        {"partition", p.partition},
                        {"backlog", p.backlog},
                        {"paused", p.paused},
                        {"committed", offset_json(p.committed)},
                        {"high_watermark", offset_json(p.high_watermark)},
                        {"lag", offset_json(p.lag)},
                        {"completion_map_bytes", p.completion_map_bytes}};
}

json::value trigger_json(const trigger_metrics& t) {
    return json::object{{"name", t.name},
                        {"topic", t.topic},
                        {"group", t.group},
                        {"handled", t.handled},
                        {"failed", t.failed},
                        {"retried", t.retried},
                        {"dead_lettered", t.dead_lettered},
                        {"in_flight", t.in_flight},
                        {"oldest_in_flight_seconds", t.oldest_in_flight_seconds},
                        {"paused", t.paused},
                        {"handler_duration", histogram_json(t.handler_duration)},
                        {"partitions", array_of(t.partitions, partition_json)}};
}

json::value broker_json(const broker_metrics& b) {
    return json::object{
        {"name", b.name}, {"state", b.state}, {"rtt_avg_seconds", b.rtt_avg_seconds}};
}

json::value consumer_json(const consumer_metrics& c) {
    return json::object{{"group", c.group},
                        {"client", c.client},
                        {"triggers", c.triggers},
                        {"topics", json::value_from(c.topics)},
                        {"assigned_partitions", c.assigned_partitions},
                        {"rebalances", c.rebalances},
                        {"rebalance_seconds_total", c.rebalance_seconds_total},
                        {"last_rebalance_seconds", c.last_rebalance_seconds},
                        {"recreations", c.recreations},
                        {"commits", c.commits},
                        {"recovering", c.recovering},
                        {"recovery_reason", c.recovery_reason},
                        {"threads", c.threads},
                        {"poll_stalled_seconds", c.poll_stalled_seconds},
                        {"delivery_stalled_seconds", c.delivery_stalled_seconds},
                        {"stalled_partition", c.stalled_partition},
                        {"completion_map_budget_bytes", c.completion_map_budget_bytes},
                        {"consumer_lag", c.consumer_lag},
                        {"rxmsgs", c.rxmsgs},
                        {"fetchq_cnt", c.fetchq_cnt},
                        {"consume_rate", c.consume_rate},
                        {"lag_rate", c.lag_rate},
                        {"group_state", c.group_state},
                        {"brokers", array_of(c.brokers, broker_json)}};
}

json::value producer_json(const producer_metrics& p) {
    return json::object{{"name", p.name},
                        {"delivered", p.delivered},
                        {"failed", p.failed},
                        {"queue_depth", p.queue_depth}};
}

json::value scaling_json(const scaling_advice& s) {
    return json::object{{"group", s.group},       {"partitions", s.partitions},
                        {"members", s.members},   {"recommended_members", s.recommended_members},
                        {"lag", s.lag},           {"consume_rate", s.consume_rate},
                        {"lag_rate", s.lag_rate}, {"reason", s.reason}};
}

json::value health_json(const health_report& h) {
    return json::object{
        {"ready", h.ready}, {"healthy", h.healthy}, {"reasons", json::value_from(h.reasons)}};
}

}  // namespace

std::string to_prometheus(const metrics_snapshot& snapshot) {
    exposition_writer out;
    write_trigger_families(out, snapshot.triggers);
    write_partition_families(out, snapshot.triggers);
    write_consumer_families(out, snapshot.consumers);
    write_producer_families(out, snapshot.producers);
    write_scaling_families(out, snapshot.scaling);
    write_process_families(out, snapshot);
    return std::move(out).take();
}

std::string to_json(const metrics_snapshot& snapshot) {
    const auto taken_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(snapshot.taken.time_since_epoch())
            .count();
    const json::object root{{"taken_unix_ms", taken_ms},
                            {"process_threads", snapshot.process_threads},
                            {"triggers", array_of(snapshot.triggers, trigger_json)},
                            {"consumers", array_of(snapshot.consumers, consumer_json)},
                            {"producers", array_of(snapshot.producers, producer_json)},
                            {"scaling", array_of(snapshot.scaling, scaling_json)},
                            {"health", health_json(snapshot.health)}};
    return json::serialize(root);
}

}  // namespace kt
