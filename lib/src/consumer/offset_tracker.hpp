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
///
/// The window holds runs of consecutive offsets, finished or not, rather than an entry per
/// offset: a partition's offsets mostly follow one another and finish in order, so delivering
/// extends the last run and finishing shortens the first (at 100 triggers an entry per offset
/// and trigger cost an allocation every few messages and most of the cache).
class offset_tracker {
  public:
    void delivered(std::int64_t offset) {
        append(offset, false);
        next_ = offset + 1;
    }

    /// `offset` is not delivered: a completion map says it finished before (it counts as
    /// delivered and finished).
    void skipped(std::int64_t offset) {
        if (!window_.empty()) append(offset, true);
        next_ = offset + 1;
    }

    /// Consumption starts at `offset` (a position known to be complete): it is committable until
    /// a later message is delivered.
    void start_at(std::int64_t offset) {
        if (window_.empty() && offset > next_) next_ = offset;
    }

    /// Marks `offset` finished; false when it is not in flight (late or duplicate completion).
    bool completed(std::int64_t offset) { return completed(offset, offset) > 0; }

    /// Marks every offset in flight in [first, last] finished (a run of deliveries finished in
    /// order, sent as one completion); returns how many were in flight.
    std::size_t completed(std::int64_t first, std::int64_t last) {
        if (window_.empty() || first > last) return 0;
        auto& front = window_.front();
        if (!front.done && front.begin == first && last < front.end) {
            // In order: the oldest in flight and those after it in its run.
            const auto finished = static_cast<std::size_t>(last + 1 - first);
            front.begin = last + 1;
            entries_ -= finished;
            if (front.begin == front.end) pop_finished();
            return finished;
        }
        std::size_t finished = 0;
        // The first run ending above `first`, then each run up to `last`: a run partly inside
        // [first, last] splits into its parts before, inside and after.
        auto i = static_cast<std::size_t>(
            std::upper_bound(window_.begin(), window_.end(), first,
                             [](std::int64_t o, const run& r) { return o < r.end; }) -
            window_.begin());
        for (; i < window_.size() && window_[i].begin <= last; ++i) {
            if (window_[i].done) continue;
            const auto r = window_[i];
            const auto from = std::max(r.begin, first), to = std::min(r.end, last + 1);
            finished += static_cast<std::size_t>(to - from);
            std::size_t at = i;
            if (from > r.begin) {
                window_[at].end = from;
                window_.insert(window_.begin() + static_cast<std::ptrdiff_t>(++at),
                               run{from, to, true});
            } else {
                window_[at] = {from, to, true};
            }
            ++done_runs_;
            if (to < r.end)
                window_.insert(window_.begin() + static_cast<std::ptrdiff_t>(at + 1),
                               run{to, r.end, false});
            i = at;
        }
        pop_finished();
        return finished;
    }

    /// Next offset to commit for this trigger; nullopt until something was delivered.
    std::optional<std::int64_t> committable() const {
        if (!window_.empty()) return window_.front().begin;
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
        add(base, window_.front().begin);
        if (done_runs_ == 0) return out;  // finished in order: nothing above the window
        std::int64_t open = -1;           // start of the finished stretch being read
        for (const auto& r : window_) {
            if (!r.done) {
                open = -1;
            } else {
                if (open < 0) open = r.begin;
                add(open, r.end);
            }
        }
        return out;
    }

    /// Delivered but not finished (counting finished ones behind an unfinished one).
    std::size_t backlog() const noexcept { return entries_; }
    bool idle() const noexcept { return window_.empty(); }

  private:
    /// Offsets [begin, end), every one delivered (or skipped), all finished or none.
    struct run {
        std::int64_t begin;
        std::int64_t end;
        bool done;
    };

    void append(std::int64_t offset, bool done) {
        ++entries_;
        if (!window_.empty() && window_.back().end == offset && window_.back().done == done) {
            ++window_.back().end;
            return;
        }
        window_.push_back({offset, offset + 1, done});
        done_runs_ += done;
    }
    /// Drops finished runs from the front: the window starts at the lowest unfinished offset.
    void pop_finished() {
        while (!window_.empty() &&
               (window_.front().done || window_.front().begin == window_.front().end)) {
            entries_ -= static_cast<std::size_t>(window_.front().end - window_.front().begin);
            done_runs_ -= window_.front().done;
            window_.pop_front();
        }
    }

    std::deque<run> window_;
    std::size_t entries_ = 0;    // offsets in the window
    std::size_t done_runs_ = 0;  // finished runs behind an unfinished one
    std::int64_t next_ = -1;
};

}  // namespace kt::detail
