#include "consumer/message_records.hpp"

#include <new>
#include <utility>

#include "message_data.hpp"

namespace kt::detail {

message_records::~message_records() = default;

message_records::free_block* message_records::link(block* slab) {
    static_assert(sizeof(message_data) <= sizeof(block) && alignof(message_data) <= alignof(block),
                  "a message record must fit a slab block");
    // Back to front, so each block's successor already exists when it is made.
    free_block* next = nullptr;
    for (std::size_t i = slab_records; i-- > 0;) next = new (&slab[i]) free_block{next};
    return next;
}

message_data* message_records::make(rd_kafka_message_t* raw, std::uint32_t references,
                                    std::uint32_t topic_id, std::uint32_t generation) {
    if (!ready_) ready_ = returned_.exchange(nullptr, std::memory_order_acquire);
    if (!ready_) {
        slabs_.push_back(std::make_unique_for_overwrite<block[]>(slab_records));
        ready_ = link(slabs_.back().get());
    }
    void* memory = std::exchange(ready_, ready_->next);
    live_.enter();
    return new (memory) message_data(raw, references, topic_id, generation, this);
}

void message_records::trim_when_idle() {
    // Only this thread makes records, so none can be made between the check and the frees; every
    // record given back pushed its block before it left (release), seen here (acquire).
    if (slabs_.size() <= 1 || !live_.idle()) return;
    returned_.store(nullptr, std::memory_order_relaxed);
    slabs_.resize(1);
    ready_ = link(slabs_.front().get());
}

void message_records::destroy(message_data* record) noexcept {
    rd_kafka_message_destroy(record->raw);
    recycle(record);
}

void message_records::recycle(message_data* record) noexcept {
    auto& records = *record->records;
    record->~message_data();
    auto* block = new (static_cast<void*>(record))
        free_block{records.returned_.load(std::memory_order_relaxed)};
    while (!records.returned_.compare_exchange_weak(block->next, block, std::memory_order_release,
                                                    std::memory_order_relaxed)) {
    }
    // Last: once none is out, the consumer may destroy `records`.
    records.live_.leave();
}

}  // namespace kt::detail
