// The `boundbench` command line: one function per sub-command, each in its
// own file (cli_<name>.cpp), dispatched by bench/main.cpp.
#pragma once

#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace bb::cli {

using Args = std::vector<std::string>;

// Parses `args` against `options`; unknown options and positional arguments
// are errors. --help prints `usage` and the options and returns false.
bool parse(
    const Args& args,
    const boost::program_options::options_description& options,
    boost::program_options::variables_map& values,
    const std::string& usage);

int run_data(const Args& args);
int run_train(const Args& args);
int run_attack(const Args& args);

}  // namespace bb::cli
