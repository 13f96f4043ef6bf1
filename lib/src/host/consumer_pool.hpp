// The shared consumers by sharing key, how many triggers use each, and those a stop closed.
// Any thread, under host_core's lock.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <vector>

#include <kt/config.hpp>
#include <kt/metrics.hpp>
#include <kt/options.hpp>
#include <kt/runtime.hpp>

namespace kt::detail {

class shared_consumer;

class consumer_pool {
  public:
    /// `rt` and `options` outlive the pool (they belong to its host).
    consumer_pool(runtime& rt, const host_options& options) : rt_(rt), options_(options) {}

    /// The consumer for `key`, created on first use (when that throws, nothing is kept); one
    /// trigger more uses it.
    std::shared_ptr<shared_consumer> acquire(const sharing_key& key, const consumer_config& config,
                                             delivery_guarantee delivery);
    /// One trigger fewer uses the consumer of `key`: true when it was the last, and the consumer
    /// left the pool (the caller stops it).
    bool release(const sharing_key& key);
    /// The consumers in use.
    std::vector<std::shared_ptr<shared_consumer>> consumers() const;
    /// Stop: every consumer leaves the pool (their committed offsets stay readable); returns
    /// them.
    std::vector<std::shared_ptr<shared_consumer>> close_all();
    std::size_t size() const noexcept { return pool_.size(); }
    /// Calls `f(consumer, triggers)` for every consumer in use.
    template <typename F>
    void for_each(F&& f) const {
        for (const auto& [key, entry] : pool_) f(*entry.consumer, entry.references);
    }
    std::vector<kt::consumer_stats> stats() const;
    /// Per partition the lowest committed offset over the consumers in use and the closed ones.
    committed_offsets committed() const;

  private:
    struct pool_entry {
        std::shared_ptr<shared_consumer> consumer;
        unsigned references = 0;
    };

    runtime& rt_;
    const host_options& options_;
    std::map<sharing_key, pool_entry> pool_;
    std::vector<std::shared_ptr<shared_consumer>> closed_;
};

}  // namespace kt::detail
