// kt::message: a reference-counted view of one consumed Kafka record (payload never copied).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <kt/trace.hpp>

namespace kt {

namespace detail {
struct message_data;
}

/// One Kafka record as delivered to a trigger. Copies share the underlying librdkafka message
/// (an atomic reference count); the payload is freed when the last copy goes. Views returned by
/// the accessors stay valid while any copy lives. Reading is thread-safe; a copy may move to
/// another thread.
class message {
  public:
    message() noexcept = default;
    explicit message(detail::message_data* adopted) noexcept : data_(adopted) {}
    message(const message& other) noexcept;
    message(message&& other) noexcept : data_(std::exchange(other.data_, nullptr)) {}
    message& operator=(message other) noexcept {
        std::swap(data_, other.data_);
        return *this;
    }
    ~message();

    explicit operator bool() const noexcept { return data_ != nullptr; }

    std::string_view topic() const noexcept;
    std::int32_t partition() const noexcept;
    std::int64_t offset() const noexcept;
    /// Key bytes; empty for a null key (see has_key()).
    std::string_view key() const noexcept;
    /// Value bytes; empty for a null value (a tombstone, see has_value()).
    std::string_view value() const noexcept;
    bool has_key() const noexcept;
    bool has_value() const noexcept;
    /// Record timestamp in milliseconds since the epoch, if the record has one.
    std::optional<std::int64_t> timestamp_ms() const noexcept;
    /// Value of the last header named `name`, if any (a null header value gives an empty view).
    std::optional<std::string_view> header(std::string_view name) const;
    /// Every header in record order: (name, value; nullopt for a null value).
    std::vector<std::pair<std::string_view, std::optional<std::string_view>>> headers() const;
    /// The W3C trace context of the record's `traceparent` and `tracestate` headers (the last of
    /// each); nullopt when it has none or an invalid one (see parse_trace_context). Parsed at
    /// each call; nothing is read before.
    std::optional<trace_context> trace() const;

    detail::message_data* data() const noexcept { return data_; }

  private:
    detail::message_data* data_ = nullptr;
};

}  // namespace kt
