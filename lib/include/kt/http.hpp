// kt::http: a small Boost.Beast HTTP/1.1 server exposing a trigger_host's metrics, health and
// pause/resume controls. A component of its own: CMake target kt::http (option KT_BUILD_HTTP).
#pragma once

#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include <kt/runtime.hpp>
#include <kt/trigger_host.hpp>

namespace kt::http {

struct endpoint_options {
    /// Listen address. Loopback by default: the endpoints have no authentication and can pause
    /// triggers.
    std::string address = "127.0.0.1";
    unsigned short port = 0;  ///< 0: an ephemeral port (see endpoints::port())
};

/// Serves, as coroutines on `executor` (through a strand), with HTTP/1.1 keep-alive:
///
///   GET  /                         the live dashboard: one self-contained HTML page (inline CSS
///                                  and JavaScript, nothing loaded from elsewhere) that polls
///                                  /triggers every second: per trigger handled/s, failures,
///                                  retries, dead letters, in flight, handler latency and a
///                                  Pause/Resume button (the POST endpoints below); per partition
///                                  lag, backlog and hold-back; consumers (health, recovery,
///                                  threads); scaling advice; plots of rate and lag over the last
///                                  minutes; a banner while the host does not answer
///   GET  /metrics                  Prometheus text (to_prometheus), text/plain; version=0.0.4
///   GET  /healthz                  200 "ok" when healthy, else 503 and the reasons, one a line
///   GET  /readyz                   200 "ready" when ready, else 503 and the reasons
///   GET  /triggers                 the metrics snapshot as JSON (to_json)
///   POST /triggers/{name}/pause    pause_trigger(name); 404 when there is no such trigger
///   POST /triggers/{name}/resume   resume_trigger(name); 404 likewise
///
/// A known path with another method answers 405 (with Allow), anything else 404. `{name}` may be
/// percent-encoded. The page uses relative URLs, so a reverse proxy may serve it under a prefix.
/// A POST whose Origin names another host answers 403 (a page of another site, opened in the
/// operator's browser, cannot pause triggers; the dashboard is same-origin, curl sends no Origin).
/// There is no authentication and the POST endpoints pause triggers: keep the default loopback
/// address, or put an authenticating reverse proxy in front before exposing them. The host must
/// outlive the server's coroutines: call stop() (or let serve() do it) before the host is
/// destroyed, or stop the executor's io_context first.
class endpoints {
  public:
    /// Binds and listens at once; throws boost::system::system_error when it cannot.
    endpoints(boost::asio::any_io_executor executor, kt::trigger_host& host,
              endpoint_options options = {});
    endpoints(const endpoints&) = delete;
    endpoints& operator=(const endpoints&) = delete;
    /// stop()
    ~endpoints();

    /// The bound port (the ephemeral one when options.port was 0).
    unsigned short port() const noexcept;
    /// Closes the listener and every open connection; their coroutines end, so an io_context
    /// run by a shard thread can run out of work. Thread-safe, idempotent, does not wait.
    void stop();

    struct state;  ///< implementation (lib/src/http/endpoints.cpp)

  private:
    std::shared_ptr<state> state_;
};

/// The one-liner: serves `host` on shard 0 of `rt` until `rt` stops gracefully, and returns the
/// bound port. Call it after host.start(): stop hooks run in registration order, so the
/// endpoints then keep answering while the host drains.
///
///   const auto port = kt::http::serve(rt, host, {.port = 9464});
unsigned short serve(kt::runtime& rt, kt::trigger_host& host, endpoint_options options = {});

}  // namespace kt::http
