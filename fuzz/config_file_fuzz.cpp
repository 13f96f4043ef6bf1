// libFuzzer target for the configuration file parser: any text parses or is refused with
// kt::config_error (never another exception, a crash or a hang); a refusal of a secret property
// never quotes the secret it got from the environment; what parses can be dumped.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <kt/config.hpp>
#include <kt/config_file.hpp>
#include <kt/errors.hpp>

namespace {

constexpr std::string_view secret = "hunter2-not-for-logs";

std::optional<std::string> environment(const std::string& name) {
    if (name == "SECRET") return std::string(secret);
    if (name == "BOOTSTRAP") return std::string("127.0.0.1:9092");
    return std::nullopt;
}

void require(bool condition, const char* what) {
    if (condition) return;
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
}

std::string_view last_segment(const std::string& path) {
    const auto at = path.find_last_of(".[");
    std::string_view name = at == std::string::npos ? path : std::string_view(path).substr(at + 1);
    if (!name.empty() && (name.front() == '"' || name.front() == '\'')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ']' || name.back() == '"' || name.back() == '\''))
        name.remove_suffix(1);
    return name;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const auto config = kt::parse_config(text, environment);
        (void)kt::dump_redacted(config);
    } catch (const kt::config_error& e) {
        const std::string_view message = e.what();
        if (kt::is_secret_property(last_segment(e.property())) &&
            text.find(secret) == std::string_view::npos)
            require(message.find(secret) == std::string_view::npos,
                    "a refused secret property does not quote the secret");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "not a config_error: %s\n", e.what());
        std::abort();
    }
    return 0;
}
