// The producers shared by configuration. Any thread, under host_core's lock; producers taken out
// are let go by the caller after unlocking (the last owner's release flushes).
#pragma once

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include <kt/config.hpp>
#include <kt/metrics.hpp>
#include <kt/producer.hpp>

namespace kt::detail {

class producer_pool {
  public:
    /// The producer for `config`, created on first use (when that throws, nothing is kept).
    std::shared_ptr<producer> get(const producer_config& config);
    /// Takes out the producers only the pool still holds (their triggers left).
    std::vector<std::shared_ptr<producer>> take_unused();
    /// Takes out every producer.
    std::map<sharing_key, std::shared_ptr<producer>> take_all() {
        return std::exchange(producers_, {});
    }
    /// Each producer's name, counters and queue depth.
    std::vector<producer_metrics> metrics() const;

  private:
    std::map<sharing_key, std::shared_ptr<producer>> producers_;
};

}  // namespace kt::detail
