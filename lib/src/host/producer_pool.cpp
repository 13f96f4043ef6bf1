// The producers shared by configuration. Any thread, under host_core's lock.
#include "host/producer_pool.hpp"

#include "producer_state.hpp"

namespace kt::detail {

std::shared_ptr<producer> producer_pool::get(const producer_config& config) {
    auto key = sharing_key::of(config, sharing::per_group, "", "");
    auto& slot = producers_[key];
    if (!slot) {
        try {
            slot = std::make_shared<producer>(config);
        } catch (...) {
            producers_.erase(key);
            throw;
        }
    }
    return slot;
}

std::vector<std::shared_ptr<producer>> producer_pool::take_unused() {
    std::vector<std::shared_ptr<producer>> unused;
    for (auto it = producers_.begin(); it != producers_.end();) {
        if (it->second.use_count() == 1) {
            unused.push_back(std::move(it->second));
            it = producers_.erase(it);
        } else {
            ++it;
        }
    }
    return unused;
}

std::vector<producer_metrics> producer_pool::metrics() const {
    std::vector<producer_metrics> all;
    for (const auto& [key, producer] : producers_)
        all.push_back({.name = producer_access::name(*producer),
                       .delivered = producer->delivered(),
                       .failed = producer->failed(),
                       .queue_depth = producer->queue_depth()});
    return all;
}

}  // namespace kt::detail
