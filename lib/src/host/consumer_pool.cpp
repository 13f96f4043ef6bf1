// The shared consumers by sharing key and their reference counts. Any thread, under host_core's
// lock.
#include "host/consumer_pool.hpp"

#include <algorithm>
#include <set>

#include "consumer/shared_consumer.hpp"

namespace kt::detail {

std::shared_ptr<shared_consumer> consumer_pool::acquire(const sharing_key& key,
                                                        const consumer_config& config,
                                                        delivery_guarantee delivery) {
    auto& entry = pool_[key];
    if (!entry.consumer) {
        try {
            entry.consumer =
                std::make_shared<shared_consumer>(key, config, rt_, options_, delivery);
        } catch (...) {
            pool_.erase(key);
            throw;
        }
    }
    ++entry.references;
    return entry.consumer;
}

bool consumer_pool::release(const sharing_key& key) {
    auto it = pool_.find(key);
    if (it == pool_.end() || --it->second.references > 0) return false;
    pool_.erase(it);
    return true;
}

std::vector<std::shared_ptr<shared_consumer>> consumer_pool::consumers() const {
    std::vector<std::shared_ptr<shared_consumer>> all;
    for (const auto& [key, entry] : pool_) all.push_back(entry.consumer);
    return all;
}

std::vector<std::shared_ptr<shared_consumer>> consumer_pool::close_all() {
    closed_ = consumers();
    pool_.clear();
    return closed_;
}

std::vector<kt::consumer_stats> consumer_pool::stats() const {
    std::vector<kt::consumer_stats> all;
    for (const auto& [key, entry] : pool_) {
        all.push_back(entry.consumer->stats());
        all.back().triggers = entry.references;
    }
    return all;
}

committed_offsets consumer_pool::committed() const {
    committed_offsets merged;
    std::set<const shared_consumer*> seen;
    auto merge = [&](const shared_consumer& consumer) {
        if (!seen.insert(&consumer).second) return;
        for (auto& [topic, partitions] : consumer.committed())
            for (auto [partition, offset] : partitions) {
                auto [it, inserted] = merged[topic].try_emplace(partition, offset);
                if (!inserted) it->second = std::min(it->second, offset);
            }
    };
    for (const auto& [key, entry] : pool_) merge(*entry.consumer);
    for (const auto& consumer : closed_) merge(*consumer);
    return merged;
}

}  // namespace kt::detail
