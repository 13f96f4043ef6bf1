// A producer that trickles keyed records into a topic while a test makes things happen.
#pragma once

#include <atomic>
#include <chrono>
#include <stop_token>
#include <string>
#include <thread>

#include <kt/producer.hpp>

#include "kafka_fixture.hpp"

namespace kt_test {

/// Produces `per_tick` messages every 50 ms on a thread of its own until stopped, keys and values
/// numbered from `first` ("key-<i % 100>", "value-<i>").
class trickle_producer {
  public:
    trickle_producer(std::string topic, int first, int per_tick = 5)
        : topic_(std::move(topic)),
          next_(first),
          producer_({{"bootstrap.servers", kafka::instance().bootstrap()},
                     {"linger.ms", "1"},
                     // Reconnect soon after a broker comes back, so the final flush is quick.
                     {"reconnect.backoff.max.ms", "500"}}) {
        thread_ = std::jthread([this, per_tick](std::stop_token stop) {
            while (!stop.stop_requested()) {
                for (int i = 0; i < per_tick; ++i, ++next_)
                    producer_.produce(topic_, "key-" + std::to_string(next_ % 100),
                                      "value-" + std::to_string(next_));
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        });
    }
    ~trickle_producer() { stop(); }
    /// Stops producing and waits until everything produced is delivered; false if it was not.
    bool stop() {
        if (!thread_.joinable()) return stopped_ok_;
        thread_.request_stop();
        thread_.join();
        stopped_ok_ = producer_.flush(std::chrono::seconds(30)) && producer_.failed() == 0;
        return stopped_ok_;
    }
    int next() const { return next_; }

  private:
    std::string topic_;
    std::atomic<int> next_;
    kt::producer producer_;
    bool stopped_ok_ = false;
    std::jthread thread_;
};

}  // namespace kt_test
