// Calling one trigger's code on one shard: attempts, retries after a jittered backoff, dead
// letter records and their writes, and the outcome. Shard thread (its coroutines run there).
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <random>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>

#include "shard/runner_metrics.hpp"
#include "shard/trigger_state.hpp"

namespace kt::detail {

/// How work ended, for the runner's report.
enum class call_outcome { handled, failed, dead_lettered, cancelled };

/// (type, message) of a handler's failure, for logs and dead letter headers.
std::pair<std::string, std::string> describe_failure(const std::exception_ptr& error);
/// Whether `policy` retries `error` (default: everything except kt::permanent_error).
bool retryable(const retry_policy& policy, const std::exception_ptr& error);

/// Use as `cancelled(co_await asio::this_coro::cancellation_state)`. Never co_await a nested
/// awaitable to ask: once cancelled, asio throws operation_aborted at every such co_await, and
/// the runner would never hear that the work ended.
inline bool cancelled(const boost::asio::cancellation_state& state) {
    return state.cancelled() != boost::asio::cancellation_type::none;
}

/// exactly_once: the failure of a message that exhausted its attempts, with the attempt count:
/// it is dead-lettered inside the next transaction instead of being handled again.
struct dead_letter_reason {
    std::pair<std::string, std::string> failure;  // (type, message)
    unsigned attempts;
    bool write;  // false: no dead letter topic; the message is skipped (counted failed)
};

/// One attempt inside a transaction: its outcome (`cancelled`: failed while cancelled) and
/// the failure, if any.
struct transaction_attempt {
    call_outcome result;
    std::exception_ptr error;
};

/// The handler calls of one trigger on one shard; owns the jitter of their backoffs.
class handler_call {
  public:
    /// Retries are counted in `metrics`.
    handler_call(trigger_state& trigger, std::uint32_t seed, runner_metrics& metrics)
        : trigger_(trigger), metrics_(metrics), jitter_random_(seed) {}

    /// Runs `work` with retries and dead letters.
    boost::asio::awaitable<call_outcome> run(const work_items& work);
    /// exactly_once: one attempt inside the open transaction of `producer` (or the dead letter
    /// write, once the message is out of attempts: `reason`); retries happen by aborting and
    /// running the transaction again.
    boost::asio::awaitable<transaction_attempt> run_in_transaction(
        const work_items& work, kt::producer& producer, const dead_letter_reason* reason);
    /// Backoff before retry `attempt` (1-based) of the policy, jittered.
    std::chrono::milliseconds backoff(const retry_policy& policy, unsigned attempt);

  private:
    /// Writes every message of `work` to the dead letter topic, retrying until acknowledged;
    /// false when cancelled first (then nothing may be reported as done).
    boost::asio::awaitable<bool> write_dead_letters(
        const work_items& work, const std::pair<std::string, std::string>& failure,
        unsigned attempts);

    trigger_state& trigger_;
    runner_metrics& metrics_;
    std::minstd_rand jitter_random_;
};

}  // namespace kt::detail
