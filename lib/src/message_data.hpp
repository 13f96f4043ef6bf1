// The shared state behind kt::message: one librdkafka message and its fan-out reference count.
#pragma once

#include <atomic>
#include <cstdint>

#include <librdkafka/rdkafka.h>

namespace kt::detail {

struct message_data {
    /// Takes ownership of `raw`; `references` is the number of kt::message handles to adopt it.
    message_data(rd_kafka_message_t* raw_message, std::uint32_t references,
                 std::uint32_t topic_index, std::uint32_t assignment_generation,
                 std::atomic<std::int64_t>* live) noexcept
        : refs(references),
          raw(raw_message),
          topic_id(topic_index),
          generation(assignment_generation),
          live_count(live) {
        live_count->fetch_add(1, std::memory_order_relaxed);
    }
    ~message_data() {
        rd_kafka_message_destroy(raw);
        live_count->fetch_sub(1, std::memory_order_release);
    }

    std::atomic<std::uint32_t> refs;
    rd_kafka_message_t* raw;
    std::uint32_t topic_id;    ///< index in the owning consumer's topic table
    std::uint32_t generation;  ///< assignment generation of the partition when delivered
    std::atomic<std::int64_t>* live_count;  ///< owning consumer waits for 0 before closing
};

}  // namespace kt::detail
