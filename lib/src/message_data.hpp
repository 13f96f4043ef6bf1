// The shared state behind kt::message: one librdkafka message and its fan-out reference count.
#pragma once

#include <atomic>
#include <cstdint>

#include <librdkafka/rdkafka.h>

#include "consumer/message_records.hpp"

namespace kt::detail {

struct message_data {
    /// Made by message_records::make (which owns `raw` from then on), destroyed by its destroy();
    /// `references` is the number of kt::message handles to adopt it.
    message_data(rd_kafka_message_t* raw_message, std::uint32_t references,
                 std::uint32_t topic_index, std::uint32_t assignment_generation,
                 message_records* owner) noexcept
        : refs(references),
          raw(raw_message),
          offset(raw_message->offset),
          partition(raw_message->partition),
          topic_id(topic_index),
          generation(assignment_generation),
          records(owner) {}

    std::atomic<std::uint32_t> refs;
    rd_kafka_message_t* raw;
    // Copied from `raw` by the poll thread: the shard's bookkeeping reads no librdkafka record.
    std::int64_t offset;
    std::int32_t partition;
    std::uint32_t topic_id;    ///< index in the owning consumer's topic table
    std::uint32_t generation;  ///< assignment generation of the partition when delivered
    message_records* records;  ///< the owning consumer's: waits for none before closing
};

}  // namespace kt::detail
