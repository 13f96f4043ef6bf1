// Helpers shared by the trigger_host integration suites: a handled-message log and host control.
#pragma once

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include <boost/asio/awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <kt/kt.hpp>

#include "coro_test.hpp"

namespace kt_test {

/// Thread-safe record of what each trigger handled: (trigger, partition, offset) with counts.
class handled_log {
  public:
    void add(const std::string& trigger, const kt::message& m) {
        std::lock_guard lock(mutex_);
        ++seen_[{trigger, m.partition(), m.offset()}];
    }
    std::size_t distinct(const std::string& trigger) const {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& [k, count] : seen_) n += std::get<0>(k) == trigger;
        return n;
    }
    std::size_t duplicates() const {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& [k, count] : seen_) n += count - 1;
        return n;
    }
    bool has(const std::string& trigger, std::int32_t partition, std::int64_t offset) const {
        std::lock_guard lock(mutex_);
        return seen_.count({trigger, partition, offset}) != 0;
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::tuple<std::string, std::int32_t, std::int64_t>, int> seen_;
};

inline kt::handler recording(handled_log& log, std::string name) {
    return [&log, name](const kt::message& m) -> boost::asio::awaitable<void> {
        log.add(name, m);
        co_return;
    };
}

inline std::int64_t sum(const std::map<std::int32_t, std::int64_t>& offsets) {
    std::int64_t total = 0;
    for (auto [p, o] : offsets) total += o;
    return total;
}

inline std::uint64_t handled_by(const kt::trigger_host& host, const std::string& name) {
    for (const auto& s : host.stats())
        if (s.name == name) return s.handled + s.failed;
    return 0;
}

inline kt::trigger_stats stats_of(const kt::trigger_host& host, const std::string& name) {
    for (const auto& s : host.stats())
        if (s.name == name) return s;
    throw std::logic_error("no trigger " + name);
}

inline const kt::runtime_options two_shards{.shards = 2};

inline void stop_host(kt::runtime& rt, kt::trigger_host& host) {
    run_coro(rt.shard(0), [&]() -> boost::asio::awaitable<void> { co_await host.stop(); });
}

inline void commit_host(kt::runtime& rt, kt::trigger_host& host) {
    run_coro(rt.shard(0), [&]() -> boost::asio::awaitable<void> { co_await host.commit(); });
}

/// Adds a no-op trigger with `options` to `host` and checks that it is refused with a
/// kt::config_error naming `property` whose message contains `words`.
inline void check_refused(kt::trigger_host& host, kt::trigger_options options,
                          const std::string& property, const std::string& words) {
    try {
        host.add_trigger(std::move(options),
                         [](const kt::message&) -> boost::asio::awaitable<void> { co_return; });
        BOOST_ERROR("expected a config_error naming " << property);
    } catch (const kt::config_error& e) {
        BOOST_TEST(e.property() == property);
        BOOST_TEST(std::string(e.what()).find(words) != std::string::npos, e.what());
    }
}

}  // namespace kt_test
