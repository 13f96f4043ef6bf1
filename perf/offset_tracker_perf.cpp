// Offset tracker micro-benchmarks: deque window vs a std::set of in-flight offsets.
#include <benchmark/benchmark.h>

#include <random>
#include <set>
#include <vector>

#include "consumer/offset_tracker.hpp"

namespace {

/// The obvious alternative: a set of in-flight offsets.
class set_tracker {
  public:
    void delivered(std::int64_t o) { in_flight_.insert(o), next_ = o + 1; }
    void completed(std::int64_t o) { in_flight_.erase(o); }
    std::int64_t committable() const { return in_flight_.empty() ? next_ : *in_flight_.begin(); }

  private:
    std::set<std::int64_t> in_flight_;
    std::int64_t next_ = 0;
};

std::vector<std::int64_t> completion_order(std::int64_t window, bool shuffled) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(window));
    for (std::int64_t i = 0; i < window; ++i) order[static_cast<std::size_t>(i)] = i;
    if (shuffled) std::shuffle(order.begin(), order.end(), std::mt19937(7));
    return order;
}

template <typename Tracker>
void mark_and_commit(benchmark::State& state, bool shuffled) {
    const auto window = state.range(0);
    const auto order = completion_order(window, shuffled);
    std::int64_t base = 0;
    Tracker tracker;
    for (auto _ : state) {
        for (std::int64_t i = 0; i < window; ++i) tracker.delivered(base + i);
        for (auto o : order) tracker.completed(base + o);
        benchmark::DoNotOptimize(tracker.committable());
        base += window;
    }
    state.SetItemsProcessed(state.iterations() * window);
}

}  // namespace

static void tracker_in_order(benchmark::State& s) {
    mark_and_commit<kt::detail::offset_tracker>(s, false);
}
static void set_in_order(benchmark::State& s) {
    mark_and_commit<set_tracker>(s, false);
}
static void tracker_out_of_order(benchmark::State& s) {
    mark_and_commit<kt::detail::offset_tracker>(s, true);
}
static void set_out_of_order(benchmark::State& s) {
    mark_and_commit<set_tracker>(s, true);
}
BENCHMARK(tracker_in_order)->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK(set_in_order)->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK(tracker_out_of_order)->Arg(64)->Arg(1024);
BENCHMARK(set_out_of_order)->Arg(64)->Arg(1024);

BENCHMARK_MAIN();
