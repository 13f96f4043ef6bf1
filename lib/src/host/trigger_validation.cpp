#include "host/trigger_validation.hpp"

#include <fmt/format.h>

#include "consumer/topic_pattern.hpp"
#include "retry_topics.hpp"

namespace kt::detail {

namespace {

/// A trigger on a topic pattern: the pattern compiles, and what is kept per topic elsewhere
/// (transactions, listeners) or named after it (dead letters) is not asked of it.
std::optional<option_problem> find_pattern_problem(const trigger_options& o,
                                                   std::optional<handler_kind> kind) {
    std::optional<topic_pattern> pattern;
    try {
        pattern.emplace(o.topic);
    } catch (const std::invalid_argument& e) {
        return option_problem{"topic",
                              fmt::format("invalid topic pattern \"{}\": {}", o.topic, e.what())};
    }
    if (o.delivery == delivery_guarantee::exactly_once)
        return option_problem{"delivery",
                              "a topic pattern supports at_least_once and at_most_once; "
                              "exactly_once needs a named topic"};
    if (o.listeners.on_assigned || o.listeners.on_revoked || o.listeners.on_lost)
        return option_problem{"listeners",
                              "rebalance listeners name partitions without their topic, so a "
                              "trigger on a topic pattern cannot have them"};
    if (kind == handler_kind::pull || !o.dead_letter.enabled) return std::nullopt;
    if (o.dead_letter.topic.empty())
        return option_problem{"dead_letter.topic",
                              "a trigger on a topic pattern names its dead letter topic (or "
                              "disables dead letters)"};
    if (pattern->matches(o.dead_letter.topic))
        return option_problem{
            "dead_letter.topic",
            fmt::format("the topic pattern \"{}\" matches the dead letter topic \"{}\": the "
                        "trigger would consume its own dead letters",
                        o.topic, o.dead_letter.topic)};
    return std::nullopt;
}

/// Retry tiers: positive delays, at-least-once handler triggers, topics of their own.
std::optional<option_problem> find_retry_topics_problem(const trigger_options& o,
                                                        std::optional<handler_kind> kind) {
    const auto& delays = o.retry_topics.delays;
    if (delays.empty()) return std::nullopt;
    for (std::size_t i = 0; i < delays.size(); ++i)
        if (delays[i].count() <= 0)
            return option_problem{"retry_topics.delays",
                                  fmt::format("tier {}'s delay is {} ms; each must be positive",
                                              i + 1, delays[i].count())};
    if (o.delivery != delivery_guarantee::at_least_once)
        return option_problem{"retry_topics",
                              "retry topics support at_least_once only (a record and its retry "
                              "are written and committed apart)"};
    if (kind == handler_kind::pull)
        return option_problem{"retry_topics", "a subscription has no retry topics"};
    if (topic_pattern::is_pattern(o.topic)) {
        if (o.retry_topics.topic_prefix.empty())
            return option_problem{"retry_topics.topic_prefix",
                                  "a trigger on a topic pattern names its retry topics' prefix"};
        const topic_pattern pattern(o.topic);  // compiles: checked before
        for (const auto& name : retry_topic_names(o))
            if (pattern.matches(name))
                return option_problem{
                    "retry_topics.topic_prefix",
                    fmt::format("the topic pattern \"{}\" matches retry topic \"{}\": the "
                                "trigger would take its retries as new messages",
                                o.topic, name)};
    }
    for (const auto& name : retry_topic_names(o))
        if (name == o.topic || name == o.dead_letter.topic)
            return option_problem{
                "retry_topics.topic_prefix",
                fmt::format("retry topic \"{}\" is the trigger's own or dead letter topic", name)};
    return std::nullopt;
}

}  // namespace

std::optional<option_problem> find_problem(const trigger_options& o,
                                           std::optional<handler_kind> kind) {
    if (o.name.empty()) return option_problem{"name", "a trigger needs a name"};
    if (o.topic.empty()) return option_problem{"topic", "a trigger needs a topic"};
    if (topic_pattern::is_pattern(o.topic))
        if (auto problem = find_pattern_problem(o, kind)) return problem;
    if (o.delivery == delivery_guarantee::exactly_once && kind == handler_kind::batch)
        return option_problem{
            "delivery", "batch triggers support at_least_once and at_most_once, not exactly_once"};
    if (o.delivery == delivery_guarantee::exactly_once && kind && kind != handler_kind::transform)
        return option_problem{"delivery",
                              "exactly_once needs a transform handler (its output joins the "
                              "offsets' transaction)"};
    if (o.key_of && o.ordering != ordering::key)
        return option_problem{"key_of", "a key extractor orders messages only under ordering key"};
    if (o.retry.max_backoff < o.retry.initial_backoff)
        return option_problem{
            "retry.max_backoff",
            fmt::format("max_backoff ({} ms) is below initial_backoff ({} ms)",
                        o.retry.max_backoff.count(), o.retry.initial_backoff.count())};
    if (auto problem = find_retry_topics_problem(o, kind)) return problem;
    if (kind != handler_kind::pull && o.dead_letter.topic == o.topic)
        return option_problem{"dead_letter.topic",
                              "the dead letter topic cannot be the trigger's own topic"};
    return std::nullopt;
}

}  // namespace kt::detail
