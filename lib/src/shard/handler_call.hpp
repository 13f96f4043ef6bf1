// Calling one trigger's code on one shard: attempts, retries after a jittered backoff, dead
// letter records and their writes, and the outcome. Shard thread (its coroutines run there).
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>

#include "shard/runner_metrics.hpp"
#include "shard/trigger_state.hpp"

namespace kt::detail {

/// How work ended, for the runner's report (`retry_scheduled`: written to a retry topic).
enum class call_outcome { handled, failed, dead_lettered, retry_scheduled, cancelled };

/// (type, message) of a handler's failure, for logs and dead letter headers.
std::pair<std::string, std::string> describe_failure(const std::exception_ptr& error);
/// What failure logs append for a message with a trace context: " [trace <trace id>]"; else "".
std::string trace_note(const trace_context* trace);
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

/// Where the messages of a batch that ended before the rest of it go (the runner reports them at
/// once, so their offsets commit while the rest retries), and messages whose retry record was
/// written after their call ended.
class batch_progress {
  public:
    /// `done` ended with `result` (handled, failed, dead_lettered or retry_scheduled); the batch
    /// goes on.
    virtual void ended_early(std::span<const message> done, call_outcome result) = 0;
    /// The dead letter or retry record of `m` (its call ended as dead_lettered or
    /// retry_scheduled) was acknowledged: `m` is done.
    virtual void record_written(const message& m) = 0;
    /// The runner was cancelled or closed: records still unwritten are given up (their messages
    /// are never reported done, so they are redelivered).
    virtual bool gave_up_writes() const noexcept = 0;

  protected:
    ~batch_progress() = default;
};

class call_traces;
class hook_calls;
struct call_progress;

/// The handler calls of one trigger on one shard; owns the jitter of their backoffs.
class handler_call {
  public:
    /// Retries are counted in `metrics`; a batch's messages that end early go to `progress`.
    handler_call(trigger_state& trigger, std::uint32_t seed, runner_metrics& metrics,
                 batch_progress& progress)
        : trigger_(trigger), metrics_(metrics), progress_(progress), jitter_random_(seed) {}

    /// Runs `work` with retries and dead letters. A batch that failed from one message on
    /// (kt::batch_error) has reported its messages before that one to `progress` and removed
    /// them from `work`: the outcome is that of what is left. With `first_failure`, the first
    /// attempt was first_attempt() and failed so.
    boost::asio::awaitable<call_outcome> run(work_items& work,
                                             std::exception_ptr first_failure = nullptr);
    /// Whether the caller may make the first attempt itself with first_attempt(), sparing run()'s
    /// coroutine frame when it succeeds: no tracing hooks go around it and no transform, whose
    /// output needs the call's traces.
    bool direct() const noexcept { return !trigger_.tracing && !trigger_.code.transform; }
    boost::asio::awaitable<void> first_attempt(const work_items& work) const {
        const auto& code = trigger_.code;
        if (code.batch) return code.batch(std::span<const message>(work.data(), work.size()));
        return code.plain(work.front());
    }
    /// exactly_once: one attempt inside the open transaction of `producer` (or the dead letter
    /// write, once the message is out of attempts: `reason`); retries happen by aborting and
    /// running the transaction again. `attempt` (1-based) is the message's, for hooks and logs.
    boost::asio::awaitable<transaction_attempt> run_in_transaction(const work_items& work,
                                                                   kt::producer& producer,
                                                                   const dead_letter_reason* reason,
                                                                   unsigned attempt);
    /// Backoff before retry `attempt` (1-based) of the policy, jittered.
    std::chrono::milliseconds backoff(const retry_policy& policy, unsigned attempt);

  private:
    /// After a failed call of `work` (from `progress.done` on): logs, then either waits the
    /// backoff (nullopt: call again) or gives the failed message(s) up (dead letter or skip);
    /// the outcome when the call is over. Kept out of run() so that its coroutine frame, made
    /// for every message, stays small enough for Asio's frame recycling.
    boost::asio::awaitable<std::optional<call_outcome>> after_failure(const work_items& work,
                                                                      call_traces& traces,
                                                                      hook_calls* hooks,
                                                                      call_progress& progress,
                                                                      std::exception_ptr error);
    /// Writes a record of each of messages `first`.. `first + count` of the call (the dead
    /// letter, or the next retry tier's), retrying until acknowledged; false when cancelled first
    /// (then nothing may be reported as done).
    using record_maker = std::function<record(const message&, const trace_context* child)>;
    /// Writes a record of each of messages `first`.. `first + count` of the call (its dead letter,
    /// or its next retry tier's record) on the side, retrying until acknowledged, and reports each
    /// message done to the runner once its record is: the lane goes on meanwhile.
    void write_aside(const boost::asio::any_io_executor& shard, call_traces& traces,
                     std::size_t first, std::size_t count, const record_maker& make);

    trigger_state& trigger_;
    runner_metrics& metrics_;
    batch_progress& progress_;
    std::minstd_rand jitter_random_;
};

}  // namespace kt::detail
