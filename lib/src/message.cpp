// kt::message accessors over rd_kafka_message_t.
#include <kt/message.hpp>
#include <kt/options.hpp>

#include <string>

#include "message_data.hpp"

namespace kt {

message::message(const message& other) noexcept : data_(other.data_) {
    if (data_) data_->refs.fetch_add(1, std::memory_order_relaxed);
}

message::~message() {
    if (data_ && data_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
        detail::message_records::destroy(data_);
}

std::string_view message::topic() const noexcept {
    return rd_kafka_topic_name(data_->raw->rkt);
}
std::int32_t message::partition() const noexcept {
    return data_->partition;
}
std::int64_t message::offset() const noexcept {
    return data_->offset;
}

std::string_view message::key() const noexcept {
    const auto* raw = data_->raw;
    return raw->key ? std::string_view(static_cast<const char*>(raw->key), raw->key_len)
                    : std::string_view{};
}

std::string_view message::value() const noexcept {
    const auto* raw = data_->raw;
    return raw->payload ? std::string_view(static_cast<const char*>(raw->payload), raw->len)
                        : std::string_view{};
}

bool message::has_key() const noexcept {
    return data_->raw->key != nullptr;
}
bool message::has_value() const noexcept {
    return data_->raw->payload != nullptr;
}

std::optional<std::int64_t> message::timestamp_ms() const noexcept {
    rd_kafka_timestamp_type_t type;
    const auto ts = rd_kafka_message_timestamp(data_->raw, &type);
    if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE) return std::nullopt;
    return ts;
}

std::optional<std::string_view> message::header(std::string_view name) const {
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(data_->raw, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    const void* value = nullptr;
    size_t size = 0;
    const std::string name_z(name);
    if (rd_kafka_header_get_last(headers, name_z.c_str(), &value, &size) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return std::nullopt;
    return value ? std::string_view(static_cast<const char*>(value), size) : std::string_view{};
}

std::vector<std::pair<std::string_view, std::optional<std::string_view>>> message::headers() const {
    std::vector<std::pair<std::string_view, std::optional<std::string_view>>> all;
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(data_->raw, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return all;
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
        std::optional<std::string_view> v;
        if (value) v = std::string_view(static_cast<const char*>(value), size);
        all.emplace_back(name, v);
    }
    return all;
}

std::optional<trace_context> message::trace() const {
    const auto traceparent = header("traceparent");
    if (!traceparent) return std::nullopt;
    return parse_trace_context(*traceparent, header("tracestate"));
}

key_extractor key_from_header(std::string name) {
    return [name = std::move(name)](const message& m) {
        return std::string(m.header(name).value_or(std::string_view{}));
    };
}

}  // namespace kt
