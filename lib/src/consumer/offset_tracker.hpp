// Per (trigger, partition) record of delivered-but-unfinished offsets; yields the committable one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "consumer/completion_map.hpp"

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

    /// `offset` is not delivered: a completion map says it finished before (it counts as
    /// delivered and finished).
    void skipped(std::int64_t offset) {
        if (!window_.empty()) {
            window_.push_back({offset, true});
            ++done_in_window_;
        }
        next_ = offset + 1;
    }

    /// Consumption starts at `offset` (a position known to be complete): it is committable until
    /// a later message is delivered.
    void start_at(std::int64_t offset) {
        if (window_.empty() && offset > next_) next_ = offset;
    }

    /// Marks `offset` finished; false when it is not in flight (late or duplicate completion).
    bool completed(std::int64_t offset) {
        // Mostly the oldest in flight (partition order): no search through a deque of thousands.
        auto it =
            !window_.empty() && window_.front().offset == offset
                ? window_.begin()
                : std::lower_bound(window_.begin(), window_.end(), offset,
                                   [](const entry& e, std::int64_t o) { return e.offset < o; });
        if (it == window_.end() || it->offset != offset || it->done) return false;
        it->done = true;
        ++done_in_window_;
        while (!window_.empty() && window_.front().done) {
            window_.pop_front();
            --done_in_window_;
        }
        return true;
    }

    /// Next offset to commit for this trigger; nullopt until something was delivered.
    std::optional<std::int64_t> committable() const {
        if (!window_.empty()) return window_.front().offset;
        if (next_ < 0) return std::nullopt;
        return next_;
    }

    /// The finished offsets at or above `base`. Offsets between delivered ones carry no message
    /// (compaction, transaction markers), so a range runs across them.
    offset_ranges finished_above(std::int64_t base) const {
        offset_ranges out;
        auto add = [&](std::int64_t begin, std::int64_t end) {
            begin = std::max(begin, base);
            if (begin >= end) return;
            if (!out.empty() && out.back().end >= begin)
                out.back().end = std::max(out.back().end, end);
            else
                out.push_back({begin, end});
        };
        if (window_.empty()) {
            if (next_ >= 0) add(base, next_);
            return out;
        }
        add(base, window_.front().offset);
        if (done_in_window_ == 0) return out;  // finished in order: nothing above the window
        std::int64_t open = -1;                // start of the finished run being read
        for (const auto& e : window_) {
            if (!e.done) {
                open = -1;
            } else {
                if (open < 0) open = e.offset;
                add(open, e.offset + 1);
            }
        }
        return out;
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
    std::size_t done_in_window_ = 0;  // finished entries behind an unfinished one
    std::int64_t next_ = -1;
};

}  // namespace kt::detail
