#include "retry_topics.hpp"

#include <charconv>

#include <fmt/format.h>

#include <kt/errors.hpp>

namespace kt {

std::vector<std::chrono::milliseconds> parse_retry_delays(std::string_view text) {
    std::vector<std::chrono::milliseconds> delays;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        const auto item = text.substr(start, comma - start);
        std::int64_t amount = 0;
        const auto [end, err] = std::from_chars(item.data(), item.data() + item.size(), amount);
        const std::string_view unit(end, item.data() + item.size() - end);
        const std::int64_t scale = unit == "ms"  ? 1
                                   : unit == "s" ? 1000
                                   : unit == "m" ? 60'000
                                   : unit == "h" ? 3'600'000
                                                 : 0;
        if (err != std::errc{} || amount <= 0 || scale == 0)
            throw config_error("retry_topics.delays",
                               fmt::format("\"{}\" is not a retry tier delay; use <n>ms, <n>s, "
                                           "<n>m or <n>h (n > 0), comma-separated, e.g. 1s,10s,60s",
                                           item));
        delays.emplace_back(amount * scale);
        start = comma + 1;
    }
    return delays;
}

std::vector<std::string> retry_topic_names(const trigger_options& options) {
    const auto& policy = options.retry_topics;
    const auto prefix =
        policy.topic_prefix.empty() ? options.topic + ".retry." : policy.topic_prefix;
    std::vector<std::string> names;
    for (std::size_t tier = 1; tier <= policy.delays.size(); ++tier)
        names.push_back(prefix + std::to_string(tier));
    return names;
}

}  // namespace kt

namespace kt::detail {

record retry_record(const std::string& trigger, const std::string& tier_topic, unsigned tier,
                    std::chrono::milliseconds delay, const message& m,
                    const std::pair<std::string, std::string>& failure) {
    record r;
    r.topic = tier_topic;
    if (m.has_key()) r.key = std::string(m.key());
    if (m.has_value()) r.value = std::string(m.value());
    const bool first_retry = !m.header(retry_header::tier);
    for (const auto& [name, value] : m.headers()) {
        // This tier's stamp replaces the previous one; the history and the origin stay.
        if (name == retry_header::tier || name == retry_header::due ||
            name == retry_header::trigger)
            continue;
        r.headers.push_back(
            {std::string(name), value ? std::optional<std::string>(*value) : std::nullopt});
    }
    auto add = [&](const char* name, std::string value) {
        r.headers.push_back({name, std::move(value)});
    };
    if (first_retry) {
        add("kt-original-topic", std::string(m.topic()));
        add("kt-original-partition", std::to_string(m.partition()));
        add("kt-original-offset", std::to_string(m.offset()));
    }
    add(retry_header::failure,
        fmt::format("tier {}: {}: {}", tier - 1, failure.first, failure.second));
    add(retry_header::trigger, trigger);
    add(retry_header::tier, std::to_string(tier));
    // Rounded up: never due before the delay has passed.
    const auto due = std::chrono::ceil<std::chrono::milliseconds>(
        (std::chrono::system_clock::now() + delay).time_since_epoch());
    add(retry_header::due, std::to_string(due.count()));
    return r;
}

namespace {

std::optional<std::string_view> last_header(rd_kafka_headers_t* headers, const char* name) {
    const void* value = nullptr;
    std::size_t size = 0;
    if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !value)
        return std::nullopt;
    return std::string_view(static_cast<const char*>(value), size);
}

}  // namespace

std::optional<retry_stamp> read_retry_stamp(rd_kafka_message_t* raw) {
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(raw, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
    const auto due_text = last_header(headers, retry_header::due);
    const auto trigger = last_header(headers, retry_header::trigger);
    if (!due_text || !trigger) return std::nullopt;
    std::int64_t due_ms = 0;
    const auto [end, err] =
        std::from_chars(due_text->data(), due_text->data() + due_text->size(), due_ms);
    if (err != std::errc{} || end != due_text->data() + due_text->size()) return std::nullopt;
    return retry_stamp{std::chrono::system_clock::time_point(std::chrono::milliseconds(due_ms)),
                       std::string(*trigger)};
}

}  // namespace kt::detail
