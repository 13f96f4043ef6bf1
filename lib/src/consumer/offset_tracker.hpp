// Per (trigger, partition) record of delivered-but-unfinished offsets; yields the committable one.
#pragma once

#include <algorithm>
#include <bit>
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
/// The window is a deque of 64-offset blocks, each with a bit per delivered and per finished
/// offset, rather than an entry per offset: delivering sets a bit, finishing a run of them is a
/// mask, in order or not (at 100 triggers an entry per offset and trigger cost an allocation
/// every 32 deliveries and most of the cache).
class offset_tracker {
  public:
    void delivered(std::int64_t offset) {
        mark(offset, false);
        next_ = offset + 1;
    }

    /// `offset` is not delivered: a completion map says it finished before (it counts as
    /// delivered and finished).
    void skipped(std::int64_t offset) {
        if (!window_.empty()) mark(offset, true);
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
        // The block holding `first`: mostly the front one (partition order).
        std::size_t i = 0;
        if (first >= window_.front().base + block_bits)
            i = static_cast<std::size_t>(
                std::upper_bound(window_.begin(), window_.end(), first,
                                 [](std::int64_t o, const block& b) { return o < b.base; }) -
                window_.begin());
        if (i > 0) --i;
        std::size_t finished = 0;
        for (; i < window_.size() && window_[i].base <= last; ++i) {
            auto& b = window_[i];
            const auto open = b.delivered & ~b.done & bits_between(b.base, first, last);
            finished += static_cast<std::size_t>(std::popcount(open));
            b.done |= open;
        }
        pop_finished();
        // Finished ones in front of the first unfinished one have left the window.
        finished_in_front_ = 0;
        if (!window_.empty()) {
            const auto& b = window_.front();
            const auto below = (std::uint64_t{1} << std::countr_zero(b.delivered & ~b.done)) - 1;
            finished_in_front_ = static_cast<std::size_t>(std::popcount(b.delivered & below));
        }
        return finished;
    }

    /// Next offset to commit for this trigger; nullopt until something was delivered.
    std::optional<std::int64_t> committable() const {
        if (!window_.empty()) {
            const auto& b = window_.front();
            return b.base + std::countr_zero(b.delivered & ~b.done);
        }
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
        const auto commit = *committable();
        add(base, commit);
        std::int64_t open = -1;  // start of the finished stretch being read
        for (const auto& b : window_) {
            // The front block's bits below the commit have left the window.
            const auto in_window = b.base < commit ? ~((std::uint64_t{1} << (commit - b.base)) - 1)
                                                   : ~std::uint64_t{0};
            if ((b.done & b.delivered & in_window) == 0) {  // nothing finished in it
                open = -1;
                continue;
            }
            for (auto left = b.delivered & in_window; left != 0; left &= left - 1) {
                const int bit = std::countr_zero(left);
                const auto offset = b.base + bit;
                if ((b.done >> bit & 1) == 0) {
                    open = -1;
                } else {
                    if (open < 0) open = offset;
                    add(open, offset + 1);
                }
            }
        }
        return out;
    }

    /// Delivered but not finished (counting finished ones behind an unfinished one).
    std::size_t backlog() const noexcept { return entries_ - finished_in_front_; }
    bool idle() const noexcept { return window_.empty(); }

  private:
    static constexpr int block_bits = 64;
    /// Offsets [base, base + 64): which were delivered (or skipped), and which of those finished.
    struct block {
        std::int64_t base;
        std::uint64_t delivered;
        std::uint64_t done;
    };
    /// The bits of a block at `base` for offsets in [first, last].
    static std::uint64_t bits_between(std::int64_t base, std::int64_t first, std::int64_t last) {
        const auto from = std::max<std::int64_t>(first - base, 0);
        const auto to = std::min<std::int64_t>(last - base, block_bits - 1);
        if (from > to) return 0;
        const auto upto =
            to == block_bits - 1 ? ~std::uint64_t{0} : (std::uint64_t{1} << (to + 1)) - 1;
        return upto & ~((std::uint64_t{1} << from) - 1);
    }
    void mark(std::int64_t offset, bool done) {
        if (window_.empty() || offset >= window_.back().base + block_bits)
            window_.push_back({offset - offset % block_bits, 0, 0});
        auto& b = window_.back();
        const auto bit = std::uint64_t{1} << (offset - b.base);
        b.delivered |= bit;
        if (done) b.done |= bit;
        ++entries_;
    }
    /// Drops finished blocks from the front: the window starts at the lowest unfinished offset.
    void pop_finished() {
        while (!window_.empty() && (window_.front().delivered & ~window_.front().done) == 0) {
            entries_ -= static_cast<std::size_t>(std::popcount(window_.front().delivered));
            window_.pop_front();
        }
    }

    std::deque<block> window_;
    std::size_t entries_ = 0;            // delivered offsets in the window's blocks
    std::size_t finished_in_front_ = 0;  // of those, finished below the lowest unfinished one
    std::int64_t next_ = -1;
};

}  // namespace kt::detail
