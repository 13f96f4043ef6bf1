#include "consumer/lifecycle.hpp"

#include "log.hpp"

namespace kt::detail {

std::string_view to_string(consumer_phase phase) noexcept {
    switch (phase) {
        case consumer_phase::created:
            return "created";
        case consumer_phase::running:
            return "running";
        case consumer_phase::draining:
            return "draining";
        case consumer_phase::cancelling:
            return "cancelling";
        case consumer_phase::closing:
            return "closing";
        case consumer_phase::closed:
            return "closed";
    }
    return "?";
}

bool consumer_lifecycle::advance(consumer_phase next, std::string_view why) {
    auto current = phase_.load(std::memory_order_relaxed);
    do {
        if (next <= current) return false;
    } while (!phase_.compare_exchange_weak(current, next, std::memory_order_acq_rel));
    if (why.empty())
        log(log_level::info, "consumer for group '{}': {} -> {}", group_, to_string(current),
            to_string(next));
    else
        log(log_level::info, "consumer for group '{}': {} -> {} ({})", group_, to_string(current),
            to_string(next), why);
    return true;
}

}  // namespace kt::detail
