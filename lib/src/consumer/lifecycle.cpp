#include "consumer/lifecycle.hpp"

#include <iterator>

#include "log.hpp"

namespace kt::detail {

std::string_view to_string(consumer_phase phase) noexcept {
    constexpr std::string_view names[] = {"created",    "running", "draining",
                                          "cancelling", "closing", "closed"};
    const auto index = static_cast<std::size_t>(phase);
    return index < std::size(names) ? names[index] : "?";
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
