// When a consumer that reaches no broker should be recreated: pure timing, no client.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace kt::detail {

/// An outage starts at the first "no broker reachable" report and ends when a broker answers
/// (statistics, a commit, a rebalance). The client is due for recreation after
/// `recreate_after`, doubling with each recreation in a row that did not end it (up to 16×).
/// Poll thread only.
class outage_watch {
  public:
    using clock = std::chrono::steady_clock;

    /// `recreate_after` <= 0 disables recreation (the outage is still tracked).
    explicit outage_watch(std::chrono::milliseconds recreate_after) : after_(recreate_after) {}

    /// No broker reachable at `now`; true when this starts an outage.
    bool down(clock::time_point now) {
        if (since_) return false;
        since_ = now;
        return true;
    }
    /// A broker answered: the outage (if any) is over.
    void reached() noexcept {
        since_.reset();
        in_row_ = 0;
    }
    bool in_outage() const noexcept { return since_.has_value(); }

    /// How long the outage has lasted, when that is long enough to recreate the client now.
    std::optional<clock::duration> due(clock::time_point now) const {
        if (!since_ || after_.count() <= 0) return std::nullopt;
        const auto down_for = now - *since_;
        if (down_for < after_ * (1u << std::min(in_row_, 4u))) return std::nullopt;
        return down_for;
    }
    /// The client was recreated at `now`: still an outage until a broker is reported up, and the
    /// next recreation waits twice as long.
    void recreated(clock::time_point now) {
        ++in_row_;
        since_ = now;
    }

  private:
    const std::chrono::milliseconds after_;
    std::optional<clock::time_point> since_;
    unsigned in_row_ = 0;
};

}  // namespace kt::detail
