// Command-line parsing shared by the apps: --help prints the options and ends the run.
#pragma once

#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/program_options.hpp>

#include <kt/version.hpp>

namespace kt::cli {

/// Parses argv into `options`' variables (and --version); nullopt once --help printed the
/// options or --version the versions of kafka-triggers and librdkafka.
inline std::optional<boost::program_options::variables_map> parse(
    int argc, char** argv, const boost::program_options::options_description& options) {
    namespace po = boost::program_options;
    auto all = options;  // the app's options and caption, then --version
    all.add_options()("version", "print kafka-triggers' and librdkafka's versions");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, all), vm);
    if (vm.count("help")) {
        std::cout << all << '\n';
        return std::nullopt;
    }
    if (vm.count("version")) {
        std::cout << "kafka-triggers " << kt::version() << ", librdkafka "
                  << kt::librdkafka_version() << '\n';
        return std::nullopt;
    }
    po::notify(vm);
    return vm;
}

/// Splits each "NAME=VALUE" of option --`option`; throws naming a text without a name or '='.
inline std::vector<std::pair<std::string, std::string>> name_values(
    const std::string& option, const std::vector<std::string>& texts) {
    std::vector<std::pair<std::string, std::string>> result;
    for (const auto& text : texts) {
        const auto equals = text.find('=');
        if (equals == std::string::npos || equals == 0)
            throw boost::program_options::error("invalid --" + option + " '" + text +
                                                "': use NAME=VALUE");
        result.emplace_back(text.substr(0, equals), text.substr(equals + 1));
    }
    return result;
}

}  // namespace kt::cli
