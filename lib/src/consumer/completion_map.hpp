// What finished above a partition's committed offset, per trigger, and its encoding in the
// commit's metadata: after a crash or a rebalance the next owner skips only that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kt::detail {

/// Offsets [begin, end).
struct offset_range {
    std::int64_t begin;
    std::int64_t end;
    bool operator==(const offset_range&) const = default;
};
/// Sorted, disjoint, not adjacent.
using offset_ranges = std::vector<offset_range>;

/// The section key of a trigger: stable across restarts (a hash of its name), never
/// `every_trigger`.
std::uint32_t trigger_key(std::string_view trigger_name);
/// The key of a section that holds for every trigger (the intersection of theirs).
inline constexpr std::uint32_t every_trigger = 0;

/// The finished offsets above `base` (the committed offset), one section per trigger key.
struct completion_map {
    std::int64_t base = -1;
    std::vector<std::pair<std::uint32_t, offset_ranges>> sections;

    /// The section for `key`: its own, or the one for every trigger, or nullptr.
    const offset_ranges* find(std::uint32_t key) const;
    bool empty() const;
};

/// The ranges `offsets` (any order, duplicates allowed) make up.
offset_ranges ranges_of(std::vector<std::int64_t> offsets);
/// The offsets in both.
offset_ranges intersect(const offset_ranges& a, const offset_ranges& b);
/// The offsets in either.
offset_ranges unite(const offset_ranges& a, const offset_ranges& b);

/// Commit metadata for a map, at most `budget` bytes.
struct encoded_map {
    std::string text;         ///< empty when the map is empty
    bool complete = true;     ///< false: even the intersection did not fit and was cut short
    bool per_trigger = true;  ///< false: the sections did not fit, the intersection went instead
};
/// Every trigger's section if they fit; else their intersection; else as much of the
/// intersection as fits (a prefix: what is left out is redone, never skipped wrongly).
encoded_map encode(const completion_map& map, std::size_t budget);

/// The map in `metadata` committed at `committed`; nullopt when it is not ours, damaged or
/// written for another offset (`why` says which). Empty metadata is an empty map.
std::optional<completion_map> decode(std::string_view metadata, std::int64_t committed,
                                     std::string* why = nullptr);

}  // namespace kt::detail
