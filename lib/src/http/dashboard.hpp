// The live dashboard page served at GET / (lib/src/http/dashboard.html, embedded at build time).
#pragma once

#include <string_view>

namespace kt::http::detail {

/// The whole page: HTML with its CSS and JavaScript inline, no external assets.
std::string_view dashboard_html() noexcept;

}  // namespace kt::http::detail
