// How the consumer's asynchronous operations complete: an any_completion_handler taking an
// exception (null on success), completed on the handler's associated executor.
#pragma once

#include <exception>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>

namespace kt::detail {

using done_signature = void(std::exception_ptr);
using done_handler = boost::asio::any_completion_handler<done_signature>;

/// Completes `done` on its associated executor (posted there from the poll thread; inline only
/// for a plain callback without one).
inline void complete(done_handler done, std::exception_ptr error = nullptr) {
    boost::asio::dispatch(boost::asio::append(std::move(done), error));
}

/// The same from a caller's thread (a refused command): never inline, so never inside the
/// caller's own initiation.
inline void post_completion(done_handler done, std::exception_ptr error = nullptr) {
    // Boost 1.81's any_completion_executor cannot be required to never block (asio::post asks
    // that), only preferred.
    auto ex = boost::asio::prefer(boost::asio::get_associated_executor(done),
                                  boost::asio::execution::blocking.never);
    ex.execute([done = std::move(done), error]() mutable { std::move(done)(error); });
}

}  // namespace kt::detail
