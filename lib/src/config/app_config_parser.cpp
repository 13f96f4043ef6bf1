// The application configuration: a file's sections read and resolved into an app_config.
#include <kt/config_file.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

#include <fmt/format.h>

#include <kt/errors.hpp>
#include <kt/producer.hpp>

#include "config/json_reader.hpp"
#include "config/properties.hpp"
#include "config/schema.hpp"
#include "host/trigger_validation.hpp"

namespace kt::detail::config {
namespace {

// ---------------------------------------------------------------- sections

template <typename Named>
const Named* find_named(const std::vector<Named>& all, std::string_view name) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Named& n) { return n.name == name; });
    return it == all.end() ? nullptr : &*it;
}

template <typename Named>
const Named& resolve(const std::vector<Named>& all, const std::string& name,
                     const std::string& path, std::string_view what) {
    if (const auto* found = find_named(all, name)) return *found;
    std::vector<std::string> known;
    for (const auto& n : all) known.push_back(n.name);
    fail(path, fmt::format("unknown {} \"{}\" (known: {})", what, name, join(known)));
}

/// Names must be unique per section; remembers where each was defined.
void claim_name(std::map<std::string, std::string>& seen, const std::string& name,
                const std::string& path, std::string_view what) {
    auto [it, fresh] = seen.emplace(name, path);
    if (!fresh)
        fail(path, fmt::format("duplicate {} name \"{}\" (also {})", what, name, it->second));
}

bool has_bootstrap(const consumer_config& config) {
    return !config.get("bootstrap.servers").empty() || !config.get("metadata.broker.list").empty();
}

class config_parser {
  public:
    explicit config_parser(const environment& env) : env_(env) {}

    app_config parse(const json::value& root) {
        object_reader r(root, "$", root_keys, env_);
        if (auto common = r.child("common", common_keys)) read_common(*common);
        std::map<std::string, std::string> names;
        r.for_each("producers", [&](const json::value& v, const std::string& path) {
            config_.producers.push_back(read_producer(v, path));
            claim_name(names, config_.producers.back().name, path + ".name", "producer");
        });
        names.clear();
        r.for_each("consumers", [&](const json::value& v, const std::string& path) {
            config_.consumers.push_back(read_consumer(v, path));
            claim_name(names, config_.consumers.back().name, path + ".name", "consumer");
        });
        names.clear();
        r.for_each("triggers", [&](const json::value& v, const std::string& path) {
            config_.triggers.push_back(read_trigger(v, path, config_.triggers.size()));
            claim_name(names, config_.triggers.back().options.name, path + ".name", "trigger");
        });
        if (capacity_) config_.host.channel_capacity = capacity_->value;
        return std::move(config_);
    }

  private:
    struct capacity_setting {
        std::size_t value;
        std::string path;
    };

    void read_common(const object_reader& r) {
        read_mapped(r, common_property_keys, common_);
        if (auto security = r.child("security", security_keys))
            read_mapped(*security, security_property_keys, common_);
        read_properties(r, common_);
        auto& host = config_.host;
        host.sharing = r.choose("sharing", sharing_choices, host.sharing);
        host.commit_interval = r.millis("commit_interval_ms", 1, host.commit_interval);
        host.commit_after = r.integer<std::size_t>("commit_after", 0, host.commit_after);
        host.completion_map = r.boolean("completion_map", host.completion_map);
        host.drain_timeout = r.millis("drain_timeout_ms", 0, host.drain_timeout);
        host.revoke_drain_timeout =
            r.millis("revoke_drain_timeout_ms", 0, host.revoke_drain_timeout);
        host.statistics_interval = r.millis("statistics_interval_ms", 0, host.statistics_interval);
        host.outage_recreate_after =
            r.millis("outage_recreate_after_ms", 0, host.outage_recreate_after);
        if (auto health = r.child("health", health_keys)) {
            host.health.stuck_after = health->millis("stuck_after_ms", 1, host.health.stuck_after);
            host.health.poll_stall_after =
                health->millis("poll_stall_after_ms", 1, host.health.poll_stall_after);
            host.health.max_lag = health->integer<std::int64_t>("max_lag", 0, host.health.max_lag);
            host.health.scale_up_lag =
                health->integer<std::int64_t>("scale_up_lag", 0, host.health.scale_up_lag);
        }
        read_channel_capacity(r);
    }

    /// The host has one ring capacity for every consumer: values given in several places must
    /// agree.
    void read_channel_capacity(const object_reader& r) {
        if (!r.find("channel_capacity")) return;
        const auto value = r.integer<std::size_t>("channel_capacity", 1, 0);
        if (capacity_ && capacity_->value != value)
            fail(r.at("channel_capacity"),
                 fmt::format("{} differs from {} at {} (one capacity applies to every consumer "
                             "of a host)",
                             value, capacity_->value, capacity_->path));
        if (!capacity_) capacity_ = capacity_setting{value, r.at("channel_capacity")};
    }

    void require_bootstrap(const consumer_config& config, const std::string& path,
                           std::string_view what) const {
        if (!has_bootstrap(config))
            fail(path, fmt::format("{} has no bootstrap servers: set $.common.bootstrap_servers "
                                   "or properties[\"bootstrap.servers\"]",
                                   what));
    }

    /// The keys named consumers and producers share.
    template <typename Named>
    static Named read_identity(const object_reader& r) {
        Named named;
        named.name = r.required_string("name");
        named.topics = r.strings("topics");
        named.delivery = r.choose("delivery", delivery_choices, named.delivery);
        return named;
    }

    named_consumer read_consumer(const json::value& v, const std::string& path) {
        object_reader r(v, path, consumer_keys, env_);
        auto c = read_identity<named_consumer>(r);
        read_channel_capacity(r);
        property_map own;
        add_property(own, "group.id", r.required_string("group_id"), r.at("group_id"));
        read_mapped(r, client_id_key, own);
        read_properties(r, own);
        overlay(c.config, common_);
        overlay(c.config, own);
        require_bootstrap(c.config, path, fmt::format("consumer \"{}\"", c.name));
        return c;
    }

    named_producer read_producer(const json::value& v, const std::string& path) {
        object_reader r(v, path, producer_keys, env_);
        auto p = read_identity<named_producer>(r);
        property_map own;
        read_mapped(r, client_id_key, own);
        if (r.find("idempotence"))
            add_property(own, "enable.idempotence",
                         r.boolean("idempotence", true) ? "true" : "false", r.at("idempotence"));
        read_properties(r, own);
        apply_producer_delivery(p.delivery, r.at("delivery"), own);
        consumer_config common;
        overlay(common, common_);
        p.config = producer_config_for(common);  // consumer-only common properties dropped
        overlay(p.config, own);
        require_bootstrap(p.config, path, fmt::format("producer \"{}\"", p.name));
        return p;
    }

    /// at_most_once sends once (no retries, so no idempotence); exactly_once means idempotent
    /// (transactions belong to exactly_once triggers).
    static void apply_producer_delivery(delivery_guarantee delivery, const std::string& path,
                                        property_map& own) {
        const auto idempotence = own.find("enable.idempotence");
        if (delivery == delivery_guarantee::at_most_once) {
            for (const char* name : {"enable.idempotence", "message.send.max.retries", "retries"})
                if (auto it = own.find(name); it != own.end())
                    fail(it->second.path,
                         "conflicts with delivery \"at_most_once\" (which sends "
                         "once: no retries, no idempotence)");
            own["enable.idempotence"] = {"false", path};
            own["message.send.max.retries"] = {"0", path};
        } else if (delivery == delivery_guarantee::exactly_once) {
            if (idempotence != own.end() && idempotence->second.value == "false")
                fail(idempotence->second.path,
                     "conflicts with delivery \"exactly_once\" (which needs idempotence)");
            own["enable.idempotence"] = {"true", path};
        }
    }

    configured_trigger read_trigger(const json::value& v, const std::string& path,
                                    std::size_t index) {
        object_reader r(v, path, trigger_keys, env_);
        configured_trigger t;
        t.index = index;
        auto& o = t.options;
        o.name = r.required_string("name");
        t.consumer = r.required_string("consumer");
        const auto consumer_path = r.at("consumer");
        const auto& consumer = resolve(config_.consumers, t.consumer, consumer_path, "consumer");
        o.consumer = consumer.config;
        o.topic = r.required_string("topic");
        if (!consumer.topics.empty() && std::find(consumer.topics.begin(), consumer.topics.end(),
                                                  o.topic) == consumer.topics.end())
            fail(r.at("topic"), fmt::format("\"{}\" is not among consumer \"{}\"'s topics ({})",
                                            o.topic, consumer.name, join(consumer.topics)));
        t.handler = r.required_string("handler");
        o.ordering = r.choose("ordering", ordering_choices, o.ordering);
        read_ordering_key(r, t);
        o.max_in_flight = r.integer<unsigned>("max_in_flight", 1, o.max_in_flight);
        o.max_backlog = r.integer<std::size_t>("max_backlog", 1, o.max_backlog);
        o.delivery = read_trigger_delivery(r, consumer);
        if (auto retry = r.child("retry", retry_keys)) o.retry = read_retry(*retry);
        if (auto tiers = r.child("retry_topics", retry_topics_keys))
            o.retry_topics = read_retry_topics(*tiers);
        if (auto dead_letter = r.child("dead_letter", dead_letter_keys))
            read_dead_letter(*dead_letter, t);
        if (o.dead_letter.topic.empty() && !o.topic.starts_with('^'))
            o.dead_letter.topic = o.topic + ".dlq";  // the default (a pattern names its own)
        if (auto batch = r.child("batch", batch_keys)) t.batch = read_batch(*batch);
        read_transaction(r, o);
        const auto kind = t.batch ? std::optional(detail::handler_kind::batch) : std::nullopt;
        if (auto problem = detail::find_problem(o, kind))
            fail(json_path(r, problem->field), problem->message);
        return t;
    }

    /// "retry_topics": {"delays": ["1s", "10s", "60s"], "topic_prefix": "orders.retry."}.
    static retry_topics_policy read_retry_topics(const object_reader& r) {
        retry_topics_policy policy;
        const auto delays = r.strings("delays");
        if (delays.empty()) fail(r.at("delays"), "expected at least one delay, e.g. [\"1s\"]");
        for (std::size_t i = 0; i < delays.size(); ++i) {
            const auto path = element_path(r.at("delays"), i);
            try {
                const auto parsed = parse_retry_delays(delays[i]);
                if (parsed.size() != 1) fail(path, "one delay per item");
                policy.delays.push_back(parsed.front());
            } catch (const config_error& e) {
                if (e.property() == path) throw;
                fail(path, e.what());
            }
        }
        policy.topic_prefix = r.optional_string("topic_prefix").value_or("");
        return policy;
    }

    /// "ordering_key": "header:<name>" orders a key-ordered trigger by that header's value.
    static void read_ordering_key(const object_reader& r, configured_trigger& t) {
        const auto spec = r.optional_string("ordering_key");
        if (!spec || *spec == "key") return;
        constexpr std::string_view header_prefix = "header:";
        if (!spec->starts_with(header_prefix) || spec->size() == header_prefix.size())
            fail(r.at("ordering_key"),
                 fmt::format("\"{}\" is not an ordering key; use \"key\" (the record key) or "
                             "\"header:<name>\"",
                             *spec));
        if (t.options.ordering != ordering::key)
            fail(r.at("ordering_key"), "applies only with \"ordering\": \"key\"");
        t.ordering_key = *spec;
        t.options.key_of = key_from_header(spec->substr(header_prefix.size()));
    }

    /// Where a trigger_options field is written in the trigger's object `r`.
    static std::string json_path(const object_reader& r, std::string_view field) {
        if (field == "retry.max_backoff")
            return member_path(
                r.at("retry"),
                r.find("retry") && r.find("retry")->as_object().contains("max_backoff_ms")
                    ? "max_backoff_ms"
                    : "initial_backoff_ms");
        if (field == "dead_letter.topic")
            return r.find("dead_letter") ? member_path(r.at("dead_letter"), "topic")
                                         : r.at("topic");
        if (field == "delivery" && r.find("batch")) return r.at("batch");
        if (field.starts_with("retry_topics.") && r.find("retry_topics"))
            return member_path(r.at("retry_topics"), field.substr(field.find('.') + 1));
        return r.at(field);
    }

    /// A trigger inherits its consumer's guarantee; stating another one is a mistake.
    static delivery_guarantee read_trigger_delivery(const object_reader& r,
                                                    const named_consumer& consumer) {
        const auto delivery = r.choose("delivery", delivery_choices, consumer.delivery);
        if (delivery != consumer.delivery)
            fail(r.at("delivery"),
                 fmt::format("\"{}\" differs from consumer \"{}\"'s delivery \"{}\"",
                             name_of(delivery, delivery_choices), consumer.name,
                             name_of(consumer.delivery, delivery_choices)));
        return delivery;
    }

    static retry_policy read_retry(const object_reader& r) {
        retry_policy p;
        p.max_attempts = r.integer<unsigned>("max_attempts", 1, p.max_attempts);
        p.initial_backoff = r.millis("initial_backoff_ms", 0, p.initial_backoff);
        p.max_backoff = r.millis("max_backoff_ms", 0, p.max_backoff);
        p.multiplier =
            r.number("multiplier", 1.0, std::numeric_limits<double>::max(), p.multiplier);
        p.jitter = r.number("jitter", 0.0, 1.0, p.jitter);
        return p;
    }

    void read_dead_letter(const object_reader& r, configured_trigger& t) const {
        auto& dead_letter = t.options.dead_letter;
        dead_letter.enabled = r.boolean("enabled", dead_letter.enabled);
        dead_letter.topic = r.optional_string("topic").value_or("");
        if (auto name = r.optional_string("producer")) {
            dead_letter.producer =
                resolve(config_.producers, *name, r.at("producer"), "producer").config;
            t.dead_letter_producer = *name;
        }
    }

    static batch_options read_batch(const object_reader& r) {
        batch_options b;
        b.max_messages = r.integer<std::size_t>("max_messages", 1, b.max_messages);
        b.max_wait = r.millis("max_wait_ms", 0, b.max_wait);
        return b;
    }

    static void read_transaction(const object_reader& r, trigger_options& o) {
        if (o.delivery != delivery_guarantee::exactly_once) {
            for (auto key : transaction_keys)
                if (r.find(key)) fail(r.at(key), "only used with delivery \"exactly_once\"");
            return;
        }
        o.transactional_id = r.optional_string("transactional_id").value_or("");
        o.transaction_max_messages =
            r.integer<std::size_t>("transaction_max_messages", 1, o.transaction_max_messages);
        o.transaction_interval = r.millis("transaction_interval_ms", 1, o.transaction_interval);
    }

    const environment& env_;
    app_config config_;
    property_map common_;
    std::optional<capacity_setting> capacity_;
};

}  // namespace
}  // namespace kt::detail::config

namespace kt {

const named_consumer* app_config::find_consumer(std::string_view name) const {
    return detail::config::find_named(consumers, name);
}

const named_producer* app_config::find_producer(std::string_view name) const {
    return detail::config::find_named(producers, name);
}

std::optional<std::string> process_environment(const std::string& name) {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
}

app_config parse_config(std::string_view json_text, const environment& env) {
    return detail::config::config_parser(env).parse(detail::config::parse_json(json_text));
}

app_config load_config(const std::filesystem::path& file, const environment& env) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw config_error(file.string(), fmt::format("config: cannot read {}: {}", file.string(),
                                                      std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), env);
}

}  // namespace kt
