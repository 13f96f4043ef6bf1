// `kt-host admin describe|reset`: a consumer group's lag, and offset resets.
#pragma once

/// Runs `kt-host admin ...` (argv[1] is "admin"); returns the exit code. Throws what main()
/// turns into exit codes: boost::program_options::error and kt::config_error (2, usage),
/// host_cli::unreachable_kafka (3), any other exception (1: refused or failed).
int admin_command(int argc, char** argv);
