// Per (trigger, partition) record of delivered-but-unfinished offsets; yields the committable one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace kt::detail {

/// Offsets are delivered in increasing order and may complete in any order. The committable
/// offset is the lowest unfinished one, or last delivered + 1 when none is unfinished, so gaps
/// (compaction, transaction markers) never hold a commit back. Single-threaded (poll thread).
class offset_tracker {
  public:
    void delivered(std::int64_t offset) {
        window_.push_back({offset, false});
        next_ = offset + 1;
    }

    /// Consumption starts at `offset` (a position known to be complete): it is committable until
    /// a later message is delivered.
    void start_at(std::int64_t offset) {
        if (window_.empty() && offset > next_) next_ = offset;
    }

    /// Marks `offset` finished; false when it is not in flight (late or duplicate completion).
    bool completed(std::int64_t offset) {
        auto it = std::lower_bound(window_.begin(), window_.end(), offset,
                                   [](const entry& e, std::int64_t o) { return e.offset < o; });
        if (it == window_.end() || it->offset != offset || it->done) return false;
        it->done = true;
        while (!window_.empty() && window_.front().done) window_.pop_front();
        return true;
    }

    /// Next offset to commit for this trigger; nullopt until something was delivered.
    std::optional<std::int64_t> committable() const {
        if (!window_.empty()) return window_.front().offset;
        if (next_ < 0) return std::nullopt;
        return next_;
    }

    /// Delivered but not finished (counting finished ones behind an unfinished one).
    std::size_t backlog() const noexcept { return window_.size(); }
    bool idle() const noexcept { return window_.empty(); }

  private:
    struct entry {
        std::int64_t offset;
        bool done;
    };
    std::deque<entry> window_;
    std::int64_t next_ = -1;
};

}  // namespace kt::detail
