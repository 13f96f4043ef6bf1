// W3C trace context (traceparent / tracestate) of consumed records, and the hooks a tracing SDK
// plugs into: no tracing SDK is a dependency.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace kt {

/// A W3C trace context (https://www.w3.org/TR/trace-context/): the trace, the parent span and the
/// flags of a `traceparent` header, plus the `tracestate` header kept as it came.
struct trace_context {
    std::array<std::uint8_t, 16> trace_id{};
    std::array<std::uint8_t, 8> span_id{};  ///< the parent-id field of traceparent
    std::uint8_t flags = 0;                 ///< trace-flags; bit 0: sampled
    std::string trace_state;                ///< tracestate as received ("" when none)

    bool sampled() const noexcept { return (flags & 1) != 0; }
    /// 32 lower-case hex digits.
    std::string trace_id_hex() const;
    /// 16 lower-case hex digits.
    std::string span_id_hex() const;
    /// The traceparent header value, version 00: "00-<trace id>-<span id>-<flags>".
    std::string traceparent() const;
    /// A child: the same trace id, flags and tracestate, a new random non-zero span id.
    /// Thread-safe.
    trace_context child() const;

    friend bool operator==(const trace_context&, const trace_context&) = default;
};

/// The longest tracestate kept (the spec asks vendors to propagate at least 512 bytes); a longer
/// one is dropped (the traceparent is still used).
inline constexpr std::size_t max_trace_state_size = 512;

/// Parses a traceparent header, and a tracestate when there is one. Returns nullopt for an invalid
/// traceparent: wrong field lengths or separators, upper-case or non-hex digits, version ff, an
/// all-zero trace id or span id, or version 00 with anything after the flags. A later version is
/// read by its first four fields as long as what follows them starts with '-' (the spec's forward
/// compatibility). A tracestate that is too long, has more than 32 members or a malformed member
/// is dropped alone.
std::optional<trace_context> parse_trace_context(std::string_view traceparent,
                                                 std::optional<std::string_view> tracestate = {});

/// How a handler call ended, for tracing_hooks::on_handler_end.
enum class handler_outcome {
    ok,             ///< the handler returned normally
    failed,         ///< failed for good, no dead letter topic (the offset completes)
    retried,        ///< failed, or came after the failed message of a batch: it runs again
    dead_lettered,  ///< failed for good and written to the dead letter topic
    cancelled,      ///< cancelled (revocation, stop): never committed, the next owner runs it
};

std::string_view to_string(handler_outcome outcome) noexcept;

/// One message handed to a trigger's code. The pointers and views are valid during the hook only.
struct handler_event {
    std::string_view trigger;
    std::string_view topic;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    /// The call's attempt for the first message it handles (1: not a retry).
    unsigned attempt = 1;
    /// The record's context (its traceparent and tracestate headers); null when none or invalid.
    const trace_context* trace = nullptr;
    /// The handling's own context, a child of `trace`: records the handler writes through its
    /// producer and dead letter records carry it. Null when `trace` is.
    const trace_context* child = nullptr;
};

struct handler_start : handler_event {};

struct handler_end : handler_event {
    handler_outcome outcome = handler_outcome::ok;
    /// Why it did not end ok: the failure's message ("" when ok).
    std::string_view reason;
    std::chrono::nanoseconds duration{0};
};

/// Hooks around every handler call, one event pair per message (a batch call gives one pair per
/// message, each with its own outcome). Called on the shard thread running the handler, so
/// concurrently from several shards; they must not block. An exception from a hook is logged and
/// ignored. Unset hooks cost one branch per call.
struct tracing_hooks {
    std::function<void(const handler_start&)> on_handler_start;
    std::function<void(const handler_end&)> on_handler_end;

    explicit operator bool() const noexcept { return on_handler_start || on_handler_end; }
};

}  // namespace kt
