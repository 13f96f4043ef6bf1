// The consumer's subscription: what it is subscribed to, when it must change, and the wait for
// our previous change to rebalance first. Poll thread only.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kt::detail {

class topic_subscription {
  public:
    using clock = std::chrono::steady_clock;
    /// How long a change waits for the rebalance of the previous one at most.
    static constexpr std::chrono::seconds rebalance_wait{10};

    /// Triggers were attached or detached: the wanted topics may differ.
    void changed() noexcept { dirty_ = true; }
    bool due() const noexcept { return dirty_; }
    /// The topics to subscribe to now (none: unsubscribe), or nullopt when nothing changes or
    /// the change must wait. Changing the subscription while our previous change is still joining
    /// leaves a stale member behind that holds partitions until its session times out.
    std::optional<std::vector<std::string>> next(std::vector<std::string> wanted,
                                                 clock::time_point now) {
        if (wanted == subscribed_) {
            dirty_ = false;
            return std::nullopt;
        }
        if (awaiting_ && now < awaiting_until_) return std::nullopt;
        dirty_ = false;
        subscribed_ = wanted;
        awaiting_ = !wanted.empty();
        awaiting_until_ = now + rebalance_wait;
        return wanted;
    }
    /// A rebalance happened (or the subscribe call failed): the next change need not wait.
    void rebalanced() noexcept { awaiting_ = false; }
    /// A new client: it subscribes to the wanted topics from scratch.
    void reset() {
        awaiting_ = false;
        subscribed_.clear();
        dirty_ = true;
    }

  private:
    std::vector<std::string> subscribed_;
    bool dirty_ = false;
    bool awaiting_ = false;
    clock::time_point awaiting_until_{};
};

}  // namespace kt::detail
