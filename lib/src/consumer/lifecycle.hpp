// A shared consumer's phases, in order, with each transition logged.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace kt::detail {

/// created: configured, no client. running: polling. draining: stopping, in-flight handlers
/// finish (up to drain_timeout). cancelling: the drain timed out, the rest is cancelled.
/// closing: the final commit is done, the client closes. closed: nothing runs any more.
enum class consumer_phase : std::uint8_t {
    created,
    running,
    draining,
    cancelling,
    closing,
    closed
};

std::string_view to_string(consumer_phase phase) noexcept;

/// The phase moves only forward. Written by start() (created -> running) and then by the poll
/// thread only; read from any thread.
class consumer_lifecycle {
  public:
    explicit consumer_lifecycle(std::string group) : group_(std::move(group)) {}

    consumer_phase phase() const noexcept { return phase_.load(std::memory_order_acquire); }
    /// At `p` or past it.
    bool reached(consumer_phase p) const noexcept { return phase() >= p; }

    /// Moves to `next` and logs it with `why`; false (nothing changes) when `next` is not later
    /// than the current phase.
    bool advance(consumer_phase next, std::string_view why = {});

  private:
    const std::string group_;
    std::atomic<consumer_phase> phase_{consumer_phase::created};
};

}  // namespace kt::detail
