// The `boundbench` command line: one function per sub-command, each in its
// own file (cli_<name>.cpp), dispatched by bench/main.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace bb::cli {

using Args = std::vector<std::string>;

// Parses `args` against `options`; unknown or abbreviated options (no prefix
// guessing) and positional arguments are errors. --help prints `usage`, the
// options (required ones marked) and the environment variables, and returns
// false.
bool parse(
    const Args& args,
    const boost::program_options::options_description& options,
    boost::program_options::variables_map& values,
    const std::string& usage);

// Splits `args` for a command that takes paths as arguments (compare,
// merge): `paths` receives the arguments that are neither an option nor an
// option's value (an option of `options` that takes a value takes the next
// argument); the rest is returned, for parse().
Args split_paths(
    const Args& args,
    const boost::program_options::options_description& options,
    std::vector<std::string>& paths);

// Help text: the zoo's model names (from its manifest) and the default data
// folder, for --model and --data-dir descriptions.
std::string zoo_models_help();
std::string data_dir_help();
// --seed and the like: an integer in [0, 2^64 - 1] (Boost would wrap "-1").
uint64_t parse_seed(const std::string& text, const std::string& option = "--seed");

int run_data(const Args& args);
int run_train(const Args& args);
int run_attack(const Args& args);
int run_bound(const Args& args);
int run_run(const Args& args);
int run_compare(const Args& args);
int run_merge(const Args& args);

}  // namespace bb::cli
