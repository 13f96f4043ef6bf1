// kt-host's demo handler work (simulated I/O, injected failures, output records, copies) and the
// named handlers a --config file binds to its triggers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>

#include <kt/kt.hpp>

/// Appends handled-message records; shared by handlers on every shard.
class output_file {
  public:
    explicit output_file(const std::string& path);
    ~output_file();
    void record(const std::string& trigger, const kt::message& m);

  private:
    std::mutex mutex_;
    std::ofstream file_;
};

/// The demo handler's work: simulated I/O, the --fail-every failure, the --output record, and the
/// copy to the output topic.
struct demo_work {
    std::chrono::milliseconds sleep{0};
    long fail_every = 0;
    output_file& output;

    /// The handlers return this awaitable as theirs (one coroutine frame per message, not two):
    /// `trigger`, `m` and `out_topic` must outlive it, so never pass a temporary.
    boost::asio::awaitable<void> operator()(const std::string& trigger, const kt::message& m,
                                            kt::producer* out, const std::string& out_topic) const;
    /// The out_topic without a producer.
    static inline const std::string no_topic{};
};

/// The copy's topic: --output-topic, or "<topic>.out".
std::string copy_topic(const std::string& output_topic, const std::string& source_topic);

/// The handlers a --config file may name: "record", "sleep:<ms>" (record after a <ms> sleep),
/// "copy" (record and copy to copy_topic) and "batch" (record each message of a batch).
kt::handler_registry demo_handlers(const kt::app_config& config, const demo_work& work,
                                   const std::string& output_topic);
