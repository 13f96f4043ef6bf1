// Calling a trigger's code: attempts, retries after a backoff, dead letter records and writes,
// and the outcome. Shard thread.
#include "shard/handler_call.hpp"

#include <cxxabi.h>

#include <ctime>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "handling_trace.hpp"
#include "host/retry_backoff.hpp"
#include "log.hpp"
#include "producer_state.hpp"
#include "retry_topics.hpp"

namespace asio = boost::asio;

namespace kt::detail {

std::pair<std::string, std::string> describe_failure(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> name(
            abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status), std::free);
        return {status == 0 && name ? name.get() : typeid(e).name(), e.what()};
    } catch (...) {
        return {"unknown", "a non-standard exception"};
    }
}

std::string trace_note(const trace_context* trace) {
    return trace ? fmt::format(" [trace {}]", trace->trace_id_hex()) : std::string{};
}

bool retryable(const retry_policy& policy, const std::exception_ptr& error) {
    if (policy.retryable) return policy.retryable(error);
    try {
        std::rethrow_exception(error);
    } catch (const permanent_error&) {
        return false;
    } catch (...) {
        return true;
    }
}

namespace {

std::string utc_now_iso8601() {
    const auto now = std::chrono::system_clock::now();
    const auto seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

record dead_letter_record(const trigger_state& trigger, const message& m,
                          const std::pair<std::string, std::string>& failure, unsigned attempts,
                          const trace_context* child) {
    record r;
    r.topic = trigger.dead_letter_topic;
    if (m.has_key()) r.key = std::string(m.key());
    if (m.has_value()) r.value = std::string(m.value());
    for (const auto& [name, value] : m.headers())
        r.headers.push_back(
            {std::string(name), value ? std::optional<std::string>(*value) : std::nullopt});
    auto add = [&](const char* name, std::string value) {
        r.headers.push_back({name, std::move(value)});
    };
    if (!m.header(retry_header::tier)) {  // a retry record carries its origin already
        add("kt-original-topic", std::string(m.topic()));
        add("kt-original-partition", std::to_string(m.partition()));
        add("kt-original-offset", std::to_string(m.offset()));
    }
    add("kt-trigger", trigger.options.name);
    add("kt-error-type", failure.first);
    add("kt-error-message", failure.second);
    add("kt-attempts", std::to_string(attempts));
    add("kt-failed-at", utc_now_iso8601());
    if (child) set_trace_headers(r, *child);
    return r;
}

/// Waits `delay`; false when cancelled meanwhile.
asio::awaitable<bool> sleep_for(std::chrono::milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec;
}

/// Which message of a call failed, and why: a kt::batch_error names one message of a batch (and
/// perhaps its cause); anything else is the whole call's failure.
struct located_failure {
    std::size_t index = 0;  ///< into the call's messages
    bool one_message = false;
    std::exception_ptr cause;
};

located_failure locate(const std::exception_ptr& error, std::size_t batch_size, bool batch,
                       const std::string& trigger) {
    try {
        std::rethrow_exception(error);
    } catch (const batch_error& e) {
        const auto cause = e.cause() ? e.cause() : error;
        if (!batch) return {0, false, cause};
        if (e.index() < batch_size) return {e.index(), true, cause};
        log(log_level::error,
            "trigger '{}': kt::batch_error index {} is outside its batch of {}; the whole batch "
            "failed",
            trigger, e.index(), batch_size);
        return {0, false, cause};
    } catch (...) {
        return {0, false, error};
    }
}

}  // namespace

/// The handling_trace of each message of a call, made on first use (tracing hooks, a
/// transform's output, a failure): a call that needs none parses no header.
class call_traces {
  public:
    explicit call_traces(const work_items& work) noexcept : work_(work) {}

    const message& message_at(std::size_t index) const { return work_[index]; }
    handling_trace& at(std::size_t index) {
        if (traces_.empty()) {
            traces_.reserve(work_.size());
            for (const auto& m : work_) traces_.emplace_back(m);
        }
        return traces_[index];
    }

  private:
    const work_items& work_;
    std::vector<handling_trace> traces_;
};

/// Tells the tracing hooks (set) about messages `first`.. `first + count` of a call.
class hook_calls {
  public:
    hook_calls(const trigger_state& trigger, call_traces& traces)
        : trigger_(trigger), hooks_(*trigger.tracing), traces_(traces) {}

    void started(std::size_t first, std::size_t count, unsigned attempt) {
        started_at_ = std::chrono::steady_clock::now();
        attempt_ = attempt;
        if (!hooks_.on_handler_start) return;
        for (auto i = first; i < first + count; ++i) {
            handler_start event;
            fill(event, i);
            call_hook("on_handler_start", [&] { hooks_.on_handler_start(event); });
        }
    }

    void ended(std::size_t first, std::size_t count, handler_outcome outcome,
               std::string_view reason) {
        if (!hooks_.on_handler_end) return;
        const auto duration = std::chrono::steady_clock::now() - started_at_;
        for (auto i = first; i < first + count; ++i) {
            handler_end event;
            fill(event, i);
            event.outcome = outcome;
            event.reason = reason;
            event.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(duration);
            call_hook("on_handler_end", [&] { hooks_.on_handler_end(event); });
        }
    }

  private:
    void fill(handler_event& event, std::size_t index) {
        const auto& m = traces_.message_at(index);
        auto& trace = traces_.at(index);
        event.trigger = trigger_.options.name;
        event.topic = m.topic();
        event.partition = m.partition();
        event.offset = m.offset();
        event.attempt = attempt_;
        event.trace = trace.record_context();
        event.child = trace.child_context();
    }

    template <typename F>
    void call_hook(const char* which, F&& call) {
        try {
            call();
        } catch (const std::exception& e) {
            log(log_level::error, "trigger '{}': tracing hook {} threw: {}", trigger_.options.name,
                which, e.what());
        } catch (...) {
            log(log_level::error, "trigger '{}': tracing hook {} threw", trigger_.options.name,
                which);
        }
    }

    const trigger_state& trigger_;
    const tracing_hooks& hooks_;
    call_traces& traces_;
    std::chrono::steady_clock::time_point started_at_{};
    unsigned attempt_ = 1;
};

namespace {

/// A transform's call: it writes through a view of `out` that gives its records the message's
/// trace context.
asio::awaitable<void> transform(const trigger_state& trigger, const message& m, kt::producer& out,
                                handling_trace& trace) {
    auto view = producer_access::view(out, trace);
    co_await trigger.code.transform(m, view);
}

/// Runs the trigger's code once over messages `first`.. `first + count` of the call. Not a
/// coroutine: a plain or batch call adds no frame of its own (Asio recycles two per thread).
asio::awaitable<void> invoke(trigger_state& trigger, const work_items& work, std::size_t first,
                             kt::producer* out, call_traces& traces) {
    const auto& code = trigger.code;
    if (code.batch)
        return code.batch(std::span<const message>(work.data() + first, work.size() - first));
    if (code.transform) return transform(trigger, work[first], *out, traces.at(first));
    return code.plain(work[first]);
}

}  // namespace

asio::awaitable<transaction_attempt> handler_call::run_in_transaction(
    const work_items& work, kt::producer& producer, const dead_letter_reason* reason,
    unsigned attempt) {
    std::exception_ptr error;
    auto result = call_outcome::handled;
    call_traces traces(work);
    std::optional<hook_calls> hooks;
    if (trigger_.tracing && !reason) {
        hooks.emplace(trigger_, traces);
        hooks->started(0, work.size(), attempt);
    }
    try {
        if (reason) {
            result = reason->write ? call_outcome::dead_lettered : call_outcome::failed;
            if (reason->write) {
                const auto letter =
                    dead_letter_record(trigger_, work.front(), reason->failure, reason->attempts,
                                       traces.at(0).child_context());
                co_await producer.send(letter);
            }
        } else {
            co_await invoke(trigger_, work, 0, &producer, traces);
        }
    } catch (...) {
        error = std::current_exception();
    }
    const bool was_cancelled = error && cancelled(co_await asio::this_coro::cancellation_state);
    if (hooks) {
        // The transaction cycle decides the same way once the attempt is reported.
        const auto& policy = trigger_.options.retry;
        const auto outcome =
            !error          ? handler_outcome::ok
            : was_cancelled ? handler_outcome::cancelled
            : attempt < std::max(1u, policy.max_attempts) && retryable(policy, error)
                ? handler_outcome::retried
            : trigger_.dead_letter_topic.empty() ? handler_outcome::failed
                                                 : handler_outcome::dead_lettered;
        hooks->ended(0, work.size(), outcome, error ? describe_failure(error).second : "");
    }
    if (was_cancelled) co_return transaction_attempt{call_outcome::cancelled, error};
    co_return transaction_attempt{error ? call_outcome::failed : result, error};
}

namespace {

/// Writes `written` (a retry or dead letter record of `m`) until acknowledged, then reports `m`
/// done; gives up once the runner did.
asio::awaitable<void> write_until_acknowledged(std::shared_ptr<trigger_state> keep,
                                               batch_progress& runner, message m, record written) {
    std::minstd_rand jitter(static_cast<std::uint32_t>(m.offset()));
    for (unsigned n = 1;; ++n) {
        std::exception_ptr error;
        try {
            co_await keep->dead_letters()->send(written);
            break;
        } catch (...) {
            error = std::current_exception();
        }
        if (runner.gave_up_writes()) co_return;
        log(log_level::error,
            "trigger '{}': writing {}[{}]@{} to '{}' failed (attempt {}): {}; retrying, the "
            "offset stays uncommitted meanwhile",
            keep->options.name, m.topic(), m.partition(), m.offset(), written.topic, n,
            describe_failure(error).second);
        asio::steady_timer timer(co_await asio::this_coro::executor,
                                 retry_backoff(keep->options.retry, n, jitter));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (runner.gave_up_writes()) co_return;
    }
    if (!runner.gave_up_writes()) runner.record_written(m);
}

}  // namespace

void handler_call::write_aside(const asio::any_io_executor& shard, call_traces& traces,
                               std::size_t first, std::size_t count, const record_maker& make) {
    for (auto i = first; i < first + count; ++i) {
        const auto& m = traces.message_at(i);
        // The trigger (and with it the runner) lives as long as the write.
        asio::co_spawn(shard,
                       write_until_acknowledged(trigger_.shared_from_this(), progress_, m,
                                                make(m, traces.at(i).child_context())),
                       asio::detached);
    }
}

/// Where a call of a batch stands: the messages done before a failed one, and the attempts of
/// the message that failed last.
struct call_progress {
    std::size_t done = 0;
    unsigned failures = 0;
    std::int64_t failing_offset = -1;

    /// The attempt the next call is for its first message.
    unsigned attempt(const work_items& work) const {
        return failures > 0 && work[done].offset() == failing_offset ? failures + 1 : 1;
    }
    /// The outcome of what is left of `work`, the messages reported early taken out of it.
    call_outcome finish(work_items& work, call_outcome result) const {
        if (done > 0) work.erase(work.begin(), work.begin() + static_cast<std::ptrdiff_t>(done));
        return result;
    }
};

asio::awaitable<call_outcome> handler_call::run(work_items& work,
                                                std::exception_ptr first_failure) {
    call_traces traces(work);
    std::optional<hook_calls> hooks;
    if (trigger_.tracing) hooks.emplace(trigger_, traces);
    call_progress progress;
    for (;;) {
        auto error = std::exchange(first_failure, nullptr);
        if (!error) {
            if (hooks)
                hooks->started(progress.done, work.size() - progress.done, progress.attempt(work));
            try {
                co_await invoke(trigger_, work, progress.done, trigger_.output.get(), traces);
            } catch (...) {
                error = std::current_exception();
            }
            if (!error) {
                if (hooks)
                    hooks->ended(progress.done, work.size() - progress.done, handler_outcome::ok,
                                 "");
                co_return progress.finish(work, call_outcome::handled);
            }
        }
        // Checked here, not in after_failure(): co_await of a coroutine whose cancellation was
        // requested throws operation_aborted at once, and the work would end without its report.
        if (cancelled(co_await asio::this_coro::cancellation_state)) {
            if (hooks)
                hooks->ended(progress.done, work.size() - progress.done, handler_outcome::cancelled,
                             "cancelled");
            co_return progress.finish(work, call_outcome::cancelled);
        }
        const auto ended = co_await after_failure(work, traces, hooks ? &*hooks : nullptr, progress,
                                                  std::move(error));
        if (ended) co_return progress.finish(work, *ended);
    }
}

asio::awaitable<std::optional<call_outcome>> handler_call::after_failure(const work_items& work,
                                                                         call_traces& traces,
                                                                         hook_calls* hooks,
                                                                         call_progress& progress,
                                                                         std::exception_ptr error) {
    using outcome = call_outcome;
    const auto left = work.size() - progress.done;
    const auto& policy = trigger_.options.retry;
    const unsigned max_attempts = std::max(1u, policy.max_attempts);
    const auto failure = locate(error, left, trigger_.is_batch(), trigger_.options.name);
    const auto failed_at = progress.done + failure.index;
    const auto& failed = work[failed_at];
    progress.failures = failed.offset() == progress.failing_offset ? progress.failures + 1 : 1;
    progress.failing_offset = failed.offset();
    const auto failures = progress.failures;
    const bool again = failures < max_attempts && retryable(policy, failure.cause);
    // Out of in-process attempts: the next retry tier while the failure is retryable and a tier
    // is left, else the dead letter topic (or nothing).
    const auto tier = trigger_.retry_tier_of(failed.topic());
    const bool to_retry_topic =
        !again && tier < trigger_.retry_topics.size() && retryable(policy, failure.cause);
    const auto description = describe_failure(failure.cause);
    log(again || to_retry_topic ? log_level::warning : log_level::error,
        "trigger '{}' failed on {}[{}]@{}{} (attempt {} of {}): {}{}{}", trigger_.options.name,
        failed.topic(), failed.partition(), failed.offset(),
        failure.one_message ? fmt::format(" (message {} of a batch of {})", failure.index + 1, left)
        : left > 1          ? fmt::format(" (batch of {})", left)
                            : std::string{},
        failures, max_attempts, description.second,
        trace_note(traces.at(failed_at).record_context()),
        again            ? std::string("; retrying")
        : to_retry_topic ? fmt::format("; to retry tier {} ('{}', due in {} ms)", tier + 1,
                                       trigger_.retry_topics[tier],
                                       trigger_.options.retry_topics.delays[tier].count())
                         : std::string{});
    // Before a batch's failed message: done, committed while the rest retries.
    if (failure.index > 0) {
        if (hooks) hooks->ended(progress.done, failure.index, handler_outcome::ok, "");
        progress_.ended_early({work.data() + progress.done, failure.index}, outcome::handled);
        progress.done = failed_at;
    }
    // The failed message (the whole call unless a batch_error named one), then the rest of a
    // batch after it, which runs again in any case.
    const auto done = progress.done;
    const std::size_t failed_count = failure.one_message ? 1 : left;
    const std::size_t after_count = work.size() - done - failed_count;
    const auto after_reason =
        fmt::format("message at offset {} of the batch failed", failed.offset());
    if (again) {
        if (hooks) {
            hooks->ended(done, failed_count, handler_outcome::retried, description.second);
            hooks->ended(done + failed_count, after_count, handler_outcome::retried, after_reason);
        }
        add_local(metrics_.retried, 1);
        if (!co_await sleep_for(backoff(policy, failures))) co_return outcome::cancelled;
        co_return std::nullopt;
    }
    // Written on the side: the lane goes on, the messages are done once their records are.
    auto result = outcome::failed;
    if (to_retry_topic) {
        result = outcome::retry_scheduled;
        write_aside(co_await asio::this_coro::executor, traces, done, failed_count,
                    [&](const message& m, const trace_context* child) {
                        auto r = retry_record(trigger_.options.name, trigger_.retry_topics[tier],
                                              tier + 1, trigger_.options.retry_topics.delays[tier],
                                              m, description);
                        if (child) set_trace_headers(r, *child);
                        return r;
                    });
    } else if (!trigger_.dead_letter_topic.empty()) {
        result = outcome::dead_lettered;
        write_aside(co_await asio::this_coro::executor, traces, done, failed_count,
                    [&](const message& m, const trace_context* child) {
                        return dead_letter_record(trigger_, m, description, failures, child);
                    });
    }
    if (hooks) {
        hooks->ended(done, failed_count,
                     result == outcome::failed          ? handler_outcome::failed
                     : result == outcome::dead_lettered ? handler_outcome::dead_lettered
                                                        : handler_outcome::retried,
                     description.second);
        hooks->ended(done + failed_count, after_count, handler_outcome::retried, after_reason);
    }
    if (after_count == 0) co_return result;
    // Only the failed message is given up; the rest of the batch runs on from the next one.
    progress_.ended_early({work.data() + done, failed_count}, result);
    progress.done += failed_count;
    progress.failures = 0;
    progress.failing_offset = -1;
    co_return std::nullopt;
}

std::chrono::milliseconds handler_call::backoff(const retry_policy& policy, unsigned attempt) {
    return retry_backoff(policy, attempt, jitter_random_);
}

}  // namespace kt::detail
