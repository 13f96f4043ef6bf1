// Which shard owns a partition: the one function the poll thread and the pull inbox both use.
#pragma once

#include <cstdint>
#include <string_view>

namespace kt::detail {

/// FNV-1a: a stable hash (the same in every process and run).
constexpr std::uint64_t fnv1a(std::string_view text) noexcept {
    std::uint64_t hash = 14695981039346656037ull;
    for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
    return hash;
}

/// Shard that owns (topic, partition): fixed, so a partition's order is kept on one thread.
/// Consecutive partitions of a topic go to consecutive shards.
constexpr unsigned shard_of(std::string_view topic, std::int32_t partition,
                            unsigned shard_count) noexcept {
    return static_cast<unsigned>((fnv1a(topic) + static_cast<std::uint64_t>(partition)) %
                                 shard_count);
}

}  // namespace kt::detail
