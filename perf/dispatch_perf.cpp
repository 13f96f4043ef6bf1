// Fan-out micro-benchmarks: routing one message to N triggers through the shard ring with one
// shared message_data (ours) vs a payload copy per trigger, and the handle's reference counting
// (kt::message vs std::shared_ptr vs copying the record).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <kt/channel.hpp>
#include <kt/message.hpp>

#include "message_data.hpp"
#include "shard/shard_link.hpp"

namespace {

using kt::detail::message_data;
using kt::detail::shard_item;

/// A consumed record as the alternatives own it: key and value copied out of librdkafka.
struct owned_message {
    std::string key;
    std::string value;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
};

/// The copy alternative's ring item: shard_item's layout with an owned copy instead of the
/// shared handle.
struct copied_item {
    shard_item::kind what;
    void* trigger;
    owned_message* message;
    std::int32_t partition;
    std::uint32_t generation;
};

/// A raw librdkafka message built on the stack: kt::message's accessors read it like a consumed
/// one. It is never handed to rd_kafka_message_destroy (see release_storage).
class fake_record {
  public:
    explicit fake_record(std::size_t value_bytes) : key_("key-42"), value_(value_bytes, 'v') {
        raw_.payload = value_.data();
        raw_.len = value_.size();
        raw_.key = key_.data();
        raw_.key_len = key_.size();
        raw_.offset = 42;
    }
    rd_kafka_message_t* raw() noexcept { return &raw_; }
    owned_message copy() const { return {key_, value_, raw_.partition, raw_.offset}; }

  private:
    std::string key_;
    std::string value_;
    rd_kafka_message_t raw_{};
};

kt::detail::message_records records;

/// `handles` references plus one the benchmark keeps, so the last trigger never runs
/// ~message_data (which would pass the stack-built raw message to librdkafka).
message_data* share(fake_record& record, std::size_t handles) {
    return records.make(record.raw(), static_cast<std::uint32_t>(handles + 1), 0, 0);
}

/// Drops the kept reference and gives the record back: the same atomic decrement and recycling
/// the last kt::message does, minus rd_kafka_message_destroy (which the copy alternative pays as
/// well).
void release_storage(message_data* data) {
    if (data->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) std::abort();
    kt::detail::message_records::recycle(data);
}

void* trigger_address(std::int64_t index) {
    return reinterpret_cast<void*>(static_cast<std::uintptr_t>(index + 1) * 64);
}

/// Reports the time per (message, trigger) delivery next to the default time per message.
void count_deliveries(benchmark::State& state, std::int64_t triggers) {
    state.SetItemsProcessed(state.iterations() * triggers);
    state.counters["per_trigger"] = benchmark::Counter(
        static_cast<double>(triggers),
        benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

/// libstdc++ counts std::shared_ptr references without atomics while the process has a single
/// thread (__libc_single_threaded); a host always has several, so start one before measuring.
const bool multi_threaded = [] {
    std::thread([] {}).join();
    return true;
}();

}  // namespace

// Ours: one message_data per message, N ring items pointing at it; each shard-side delivery
// adopts a reference as a kt::message, the handler reads the value, the reference is dropped.
static void fan_out_shared_handle(benchmark::State& state) {
    const auto triggers = state.range(0);
    fake_record record(static_cast<std::size_t>(state.range(1)));
    boost::asio::io_context ctx;
    kt::spsc_channel<shard_item> ring(8192, ctx.get_executor());
    for (auto _ : state) {
        auto* data = share(record, static_cast<std::size_t>(triggers));
        for (std::int64_t t = 0; t < triggers; ++t)
            ring.try_push({shard_item::kind::deliver,
                           static_cast<kt::detail::trigger_state*>(trigger_address(t)), data});
        ring.notify();
        std::size_t bytes = 0;
        ring.consume_all([&](const shard_item& item) {
            const kt::message m(item.message);
            bytes += m.value().size();
        });
        benchmark::DoNotOptimize(bytes);
        release_storage(data);
    }
    count_deliveries(state, triggers);
}

// The obvious alternative: every trigger gets its own copy of key and value.
static void fan_out_payload_copy(benchmark::State& state) {
    const auto triggers = state.range(0);
    fake_record record(static_cast<std::size_t>(state.range(1)));
    boost::asio::io_context ctx;
    kt::spsc_channel<copied_item> ring(8192, ctx.get_executor());
    for (auto _ : state) {
        for (std::int64_t t = 0; t < triggers; ++t)
            ring.try_push(
                {shard_item::kind::deliver, trigger_address(t), new owned_message(record.copy())});
        ring.notify();
        std::size_t bytes = 0;
        ring.consume_all([&](const copied_item& item) {
            const std::unique_ptr<owned_message> m(item.message);
            bytes += m->value.size();
        });
        benchmark::DoNotOptimize(bytes);
    }
    count_deliveries(state, triggers);
}

static void fan_out_args(benchmark::internal::Benchmark* b) {
    for (std::int64_t bytes : {100, 4096})
        for (std::int64_t triggers : {1, 8, 31, 100}) b->Args({triggers, bytes});
    b->ArgNames({"triggers", "bytes"});
}
BENCHMARK(fan_out_shared_handle)->Apply(fan_out_args);
BENCHMARK(fan_out_payload_copy)->Apply(fan_out_args);

// Reference counting alone: N handles to one 100-byte record, each copied once (a handler keeping
// the message) and then all dropped.
static void refcount_kt_message(benchmark::State& state) {
    const auto handles = static_cast<std::size_t>(state.range(0));
    fake_record record(100);
    std::vector<kt::message> held;
    held.reserve(2 * handles);
    for (auto _ : state) {
        auto* data = share(record, handles);
        for (std::size_t i = 0; i < handles; ++i) {
            held.emplace_back(data);
            held.push_back(held.back());
        }
        benchmark::DoNotOptimize(held.data());
        held.clear();
        release_storage(data);
    }
    count_deliveries(state, state.range(0));
}

static void refcount_shared_ptr(benchmark::State& state) {
    const auto handles = static_cast<std::size_t>(state.range(0));
    fake_record record(100);
    std::vector<std::shared_ptr<const owned_message>> held;
    held.reserve(2 * handles);
    for (auto _ : state) {
        auto shared = std::make_shared<const owned_message>(record.copy());
        for (std::size_t i = 0; i < handles; ++i) {
            held.push_back(shared);
            held.push_back(held.back());
        }
        benchmark::DoNotOptimize(held.data());
        held.clear();
    }
    count_deliveries(state, state.range(0));
}

static void refcount_copy_record(benchmark::State& state) {
    const auto handles = static_cast<std::size_t>(state.range(0));
    fake_record record(100);
    std::vector<owned_message> held;
    held.reserve(2 * handles);
    for (auto _ : state) {
        for (std::size_t i = 0; i < handles; ++i) {
            held.push_back(record.copy());
            held.push_back(held.back());
        }
        benchmark::DoNotOptimize(held.data());
        held.clear();
    }
    count_deliveries(state, state.range(0));
}

BENCHMARK(refcount_kt_message)->Arg(1)->Arg(8)->Arg(31)->Arg(100)->ArgName("handles");
BENCHMARK(refcount_shared_ptr)->Arg(1)->Arg(8)->Arg(31)->Arg(100)->ArgName("handles");
BENCHMARK(refcount_copy_record)->Arg(1)->Arg(8)->Arg(31)->Arg(100)->ArgName("handles");

BENCHMARK_MAIN();
