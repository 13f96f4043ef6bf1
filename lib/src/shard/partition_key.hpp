// A partition as the shard side keys its lanes, workers and revocations: the topic's id in the
// consumer's topic table and the partition, so a trigger on a topic pattern, which gets
// partitions of many topics, keeps them apart.
#pragma once

#include <cstdint>

#include <kt/message.hpp>

#include "message_data.hpp"

namespace kt::detail {

using partition_key = std::uint64_t;

constexpr partition_key key_of_partition(std::uint32_t topic_id, std::int32_t partition) noexcept {
    return (static_cast<std::uint64_t>(topic_id) << 32) | static_cast<std::uint32_t>(partition);
}
inline partition_key key_of_partition(const message& m) noexcept {
    return key_of_partition(m.data()->topic_id, m.data()->partition);
}
constexpr std::uint32_t topic_id_of(partition_key key) noexcept {
    return static_cast<std::uint32_t>(key >> 32);
}
constexpr std::int32_t partition_of(partition_key key) noexcept {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(key));
}

}  // namespace kt::detail
