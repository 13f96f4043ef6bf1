// The trace context of one message while a trigger handles it, resolved on first use: the
// record's own context and the handling's child, which outgoing records carry. Shard thread.
#pragma once

#include <optional>

#include <kt/message.hpp>
#include <kt/producer.hpp>
#include <kt/trace.hpp>

namespace kt::detail {

class handling_trace {
  public:
    explicit handling_trace(const message& m) noexcept : message_(&m) {}

    /// The record's context (its traceparent header); null when it has none or an invalid one.
    const trace_context* record_context() {
        resolve();
        return record_ ? &*record_ : nullptr;
    }
    /// The handling's context: the record's trace with a span id of its own; null when the
    /// record has no context. The same for every call (every attempt and record written).
    const trace_context* child_context() {
        resolve();
        return child_ ? &*child_ : nullptr;
    }

  private:
    void resolve() {
        if (resolved_) return;
        resolved_ = true;
        record_ = message_->trace();
        if (record_) child_ = record_->child();
    }

    const message* message_;
    bool resolved_ = false;
    std::optional<trace_context> record_;
    std::optional<trace_context> child_;
};

/// Gives `r` the handling's child context, unless `r` carries a traceparent already (the
/// handler's own choice wins).
inline void propagate_trace(record& r, handling_trace& trace) {
    for (const auto& h : r.headers)
        if (h.name == "traceparent") return;
    if (const auto* child = trace.child_context()) set_trace_headers(r, *child);
}

}  // namespace kt::detail
