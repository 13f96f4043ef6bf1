// kt::http's endpoints: an accept loop and one coroutine per connection on a strand, and a router
// from request to response.
#include <kt/http.hpp>

#include <chrono>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <kt/metrics.hpp>

#include "http/dashboard.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace kt::http {
namespace {

using request = bhttp::request<bhttp::string_body>;
using response = bhttp::response<bhttp::string_body>;

constexpr auto idle_connection_timeout = 60s;
constexpr auto accept_retry_delay = 100ms;
constexpr auto prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";
/// The dashboard loads nothing from elsewhere and talks only to these endpoints.
constexpr auto dashboard_policy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

response make_response(const request& req, bhttp::status status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8") {
    response res{status, req.version()};
    res.set(bhttp::field::server, "kafka-triggers");
    res.set(bhttp::field::content_type, content_type);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

response method_not_allowed(const request& req, std::string_view allowed) {
    auto res =
        make_response(req, bhttp::status::method_not_allowed, fmt::format("use {}\n", allowed));
    res.set(bhttp::field::allow, allowed);
    return res;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// Undoes %XX escapes; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text) {
    std::string decoded;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            decoded += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int high = hex_digit(text[i + 1]), low = hex_digit(text[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        decoded += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return decoded;
}

std::string lines(const std::vector<std::string>& reasons) {
    std::string text;
    for (const auto& reason : reasons) text += reason + '\n';
    return text;
}

response health_response(const request& req, bool good, std::string_view good_text,
                         const std::vector<std::string>& reasons) {
    return good ? make_response(req, bhttp::status::ok, std::string(good_text) + '\n')
                : make_response(req, bhttp::status::service_unavailable, lines(reasons));
}

/// No Origin (curl, scripts), or one naming the host the request was sent to (the dashboard).
bool same_origin(const request& req) {
    const std::string_view origin = req[bhttp::field::origin];
    if (origin.empty()) return true;
    const auto scheme = origin.find("://");
    return scheme != std::string_view::npos &&
           origin.substr(scheme + 3) == std::string_view(req[bhttp::field::host]);
}

/// POST /triggers/{name}/{action}: pause or resume.
response trigger_action(const request& req, kt::trigger_host& host, std::string_view encoded_name,
                        std::string_view action) {
    if (action != "pause" && action != "resume")
        return make_response(req, bhttp::status::not_found, "not found\n");
    if (req.method() != bhttp::verb::post) return method_not_allowed(req, "POST");
    // A web page of another site, opened in the operator's browser, must not pause triggers.
    if (!same_origin(req))
        return make_response(req, bhttp::status::forbidden, "cross-origin request refused\n");
    const auto name = percent_decode(encoded_name);
    if (!name) return make_response(req, bhttp::status::bad_request, "malformed trigger name\n");
    const bool pause = action == "pause";
    const bool found = pause ? host.pause_trigger(*name) : host.resume_trigger(*name);
    if (!found)
        return make_response(req, bhttp::status::not_found,
                             fmt::format("no trigger '{}'\n", *name));
    return make_response(req, bhttp::status::ok, pause ? "paused\n" : "resumed\n");
}

response route(const request& req, kt::trigger_host& host) {
    std::string_view path = req.target();
    path = path.substr(0, path.find('?'));
    const bool get = req.method() == bhttp::verb::get;
    if (path == "/") {
        if (!get) return method_not_allowed(req, "GET");
        auto res = make_response(req, bhttp::status::ok, std::string(detail::dashboard_html()),
                                 "text/html; charset=utf-8");
        res.set("Content-Security-Policy", dashboard_policy);
        res.set(bhttp::field::cache_control, "no-store");
        return res;
    }
    if (path == "/metrics") {
        if (!get) return method_not_allowed(req, "GET");
        return make_response(req, bhttp::status::ok, kt::to_prometheus(host.metrics()),
                             prometheus_content_type);
    }
    if (path == "/healthz" || path == "/readyz") {
        if (!get) return method_not_allowed(req, "GET");
        const auto health = host.health();
        return path == "/healthz" ? health_response(req, health.healthy, "ok", health.reasons)
                                  : health_response(req, health.ready, "ready", health.reasons);
    }
    if (path == "/triggers") {
        if (!get) return method_not_allowed(req, "GET");
        return make_response(req, bhttp::status::ok, kt::to_json(host.metrics()),
                             "application/json");
    }
    constexpr std::string_view triggers_prefix = "/triggers/";
    if (path.starts_with(triggers_prefix)) {
        const auto rest = path.substr(triggers_prefix.size());
        const auto slash = rest.rfind('/');
        if (slash != std::string_view::npos && slash > 0)
            return trigger_action(req, host, rest.substr(0, slash), rest.substr(slash + 1));
    }
    return make_response(req, bhttp::status::not_found, "not found\n");
}

response respond(const request& req, kt::trigger_host& host) {
    try {
        return route(req, host);
    } catch (const std::exception& e) {
        return make_response(req, bhttp::status::internal_server_error,
                             fmt::format("error: {}\n", e.what()));
    }
}

}  // namespace

/// Shared by the accept loop and the connections; touched only on the strand, except `host`
/// (thread-safe) and `port` (set before any coroutine starts).
struct endpoints::state {
    state(asio::any_io_executor executor, kt::trigger_host& h)
        : strand(asio::make_strand(std::move(executor))), acceptor(strand), host(h) {}

    asio::strand<asio::any_io_executor> strand;
    tcp::acceptor acceptor;
    kt::trigger_host& host;
    unsigned short port = 0;
    bool stopped = false;
    std::set<beast::tcp_stream*> connections;  // open, so that stop() can close them

    void close_all() {
        stopped = true;
        beast::error_code ignored;
        acceptor.close(ignored);
        for (auto* connection : connections) connection->close();
    }
};

namespace {

using state = endpoints::state;

/// Registers an open connection with the state for as long as its coroutine runs.
class connection_registration {
  public:
    connection_registration(state& s, beast::tcp_stream& stream) : state_(s), stream_(stream) {
        state_.connections.insert(&stream_);
    }
    ~connection_registration() { state_.connections.erase(&stream_); }
    connection_registration(const connection_registration&) = delete;
    connection_registration& operator=(const connection_registration&) = delete;

  private:
    state& state_;
    beast::tcp_stream& stream_;
};

asio::awaitable<void> serve_connection(std::shared_ptr<state> s, tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    const connection_registration registration(*s, stream);
    beast::flat_buffer buffer;
    while (!s->stopped) {
        stream.expires_after(idle_connection_timeout);
        request req;
        auto [read_error, read_bytes] =
            co_await bhttp::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
        if (read_error) break;
        auto res = respond(req, s->host);
        auto [write_error, written_bytes] =
            co_await bhttp::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        if (write_error || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_loop(std::shared_ptr<state> s) {
    asio::steady_timer retry_timer(s->strand);
    while (!s->stopped) {
        auto [error, socket] =
            co_await s->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (s->stopped) break;
        if (error) {  // e.g. out of file descriptors: try again shortly rather than spin
            retry_timer.expires_after(accept_retry_delay);
            co_await retry_timer.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        asio::co_spawn(s->strand, serve_connection(s, std::move(socket)), asio::detached);
    }
}

}  // namespace

endpoints::endpoints(asio::any_io_executor executor, kt::trigger_host& host,
                     endpoint_options options)
    : state_(std::make_shared<state>(std::move(executor), host)) {
    const tcp::endpoint where(asio::ip::make_address(options.address), options.port);
    auto& acceptor = state_->acceptor;
    acceptor.open(where.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(where);
    acceptor.listen();
    state_->port = acceptor.local_endpoint().port();
    asio::co_spawn(state_->strand, accept_loop(state_), asio::detached);
}

endpoints::~endpoints() {
    stop();
}

unsigned short endpoints::port() const noexcept {
    return state_->port;
}

void endpoints::stop() {
    asio::post(state_->strand, [s = state_] { s->close_all(); });
}

unsigned short serve(kt::runtime& rt, kt::trigger_host& host, endpoint_options options) {
    auto server = std::make_shared<endpoints>(rt.shard(0), host, std::move(options));
    rt.on_stop([server]() -> asio::awaitable<void> {
        server->stop();
        co_return;
    });
    return server->port();
}

}  // namespace kt::http
