// The message records (message_data) of one consumer: made by its poll thread from slabs, destroyed
// on any thread, their memory kept for the next ones instead of a malloc here and a cross-thread
// free on a shard per message; counted, so that the consumer closes once none is out.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "consumer/in_flight.hpp"

namespace kt::detail {

struct message_data;

class message_records {
  public:
    /// Records per slab: one allocation for this many messages.
    static constexpr std::size_t slab_records = 256;

    message_records() = default;
    /// Only once none is out (the consumer waits for live() to be idle, or leaks this with its
    /// client).
    ~message_records();
    message_records(const message_records&) = delete;
    message_records& operator=(const message_records&) = delete;

    /// Poll thread: a record adopting `raw` for `references` kt::message handles.
    message_data* make(rd_kafka_message_t* raw, std::uint32_t references, std::uint32_t topic_id,
                       std::uint32_t generation);
    /// Any thread: destroys the record and its librdkafka message; its memory goes back to the
    /// record's consumer.
    static void destroy(message_data* record) noexcept;
    /// destroy() without destroying the librdkafka message (its caller's, e.g. a benchmark's).
    static void recycle(message_data* record) noexcept;
    /// Poll thread: when no record is out, frees every slab but one. A backlog's slabs stay while
    /// any of its records is out, and go once the consumer has caught up.
    void trim_when_idle();

    /// Records out (made and not destroyed yet).
    in_flight& live() noexcept { return live_; }
    /// Record memory blocks allocated: out, or free for the next records (poll thread).
    std::size_t allocated_blocks() const noexcept { return slabs_.size() * slab_records; }

  private:
    struct free_block {
        free_block* next;
    };
    struct alignas(std::max_align_t) block {
        std::byte bytes[64];
    };

    /// Links a slab's blocks into a free list: its head.
    static free_block* link(block* slab);

    in_flight live_;
    /// Blocks destroyed records gave back, from any thread: a stack that only the poll thread
    /// empties, and empties whole (so no ABA: nothing pops single blocks concurrently).
    std::atomic<free_block*> returned_{nullptr};
    /// The poll thread's own free blocks, taken from returned_ or a new slab.
    free_block* ready_ = nullptr;
    std::vector<std::unique_ptr<block[]>> slabs_;
};

}  // namespace kt::detail
