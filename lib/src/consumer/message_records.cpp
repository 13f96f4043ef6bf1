#include "consumer/message_records.hpp"

#include <new>
#include <utility>

#include "message_data.hpp"

namespace kt::detail {

static_assert(sizeof(message_data) >= sizeof(void*) && alignof(message_data) >= alignof(void*));

message_records::~message_records() {
    auto release = [](free_block* block) {
        while (block) ::operator delete(std::exchange(block, block->next), sizeof(message_data));
    };
    release(ready_);
    release(returned_.exchange(nullptr, std::memory_order_acquire));
}

message_data* message_records::make(rd_kafka_message_t* raw, std::uint32_t references,
                                    std::uint32_t topic_id, std::uint32_t generation) {
    if (!ready_) ready_ = take_returned();
    void* memory;
    if (ready_) {
        memory = std::exchange(ready_, ready_->next);
    } else {
        memory = ::operator new(sizeof(message_data));
        ++blocks_;
    }
    live_.enter();
    return new (memory) message_data(raw, references, topic_id, generation, this);
}

message_records::free_block* message_records::take_returned() {
    auto* list = returned_.exchange(nullptr, std::memory_order_acquire);
    if (blocks_ <= keep_free) return list;  // then the list is no longer
    // A backlog made more records than are kept free: the rest goes back to the allocator.
    auto* last = list;
    for (std::size_t kept = 1; last && kept < keep_free; ++kept) last = last->next;
    if (!last) return list;
    auto* surplus = std::exchange(last->next, nullptr);
    while (surplus) {
        ::operator delete(std::exchange(surplus, surplus->next), sizeof(message_data));
        --blocks_;
    }
    return list;
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
