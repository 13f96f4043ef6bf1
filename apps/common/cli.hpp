// Command-line parsing shared by the apps: --help prints the options and ends the run.
#pragma once

#include <iostream>
#include <optional>

#include <boost/program_options.hpp>

namespace kt::cli {

/// Parses argv into `options`' variables; nullopt once --help printed them.
inline std::optional<boost::program_options::variables_map> parse(
    int argc, char** argv, const boost::program_options::options_description& options) {
    namespace po = boost::program_options;
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, options), vm);
    if (vm.count("help")) {
        std::cout << options << '\n';
        return std::nullopt;
    }
    po::notify(vm);
    return vm;
}

}  // namespace kt::cli
