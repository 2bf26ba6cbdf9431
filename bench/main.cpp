// boundbench: the command line. Sub-commands live in bench/cli_<name>.cpp.
// User errors print one line and exit 2; nothing else is printed on failure.
#include <functional>
#include <iostream>

#include <torch/torch.h>

#include "bench/cli.h"
#include "core/error.h"
#include "core/runtime.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  std::function<int(const bb::cli::Args&)> run;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table{
      {"data", "load a data set split and print its shape and class counts",
       bb::cli::run_data},
      {"train", "train a zoo architecture and write its checkpoint and metadata",
       bb::cli::run_train},
      {"attack", "run one attack on test images: success rate, distortion, cost",
       bb::cli::run_attack},
  };
  return table;
}

void print_usage(std::ostream& out) {
  out << "usage: boundbench COMMAND [OPTIONS]   (boundbench COMMAND --help)\n\n"
      << "commands:\n";
  for (const auto& command : commands()) {
    out << fmt::format("  {:<10} {}\n", command.name, command.summary);
  }
}

// c10 errors carry a C++ back-trace after the first line; keep the first.
std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

namespace bb::cli {

bool parse(
    const Args& args,
    const boost::program_options::options_description& options,
    boost::program_options::variables_map& values,
    const std::string& usage) {
  namespace po = boost::program_options;
  po::options_description all;
  all.add(options).add_options()("help,h", "print this help");
  po::store(po::command_line_parser(args).options(all).run(), values);
  if (values.count("help")) {
    std::cout << usage << "\n\n" << all << "\n";
    return false;
  }
  po::notify(values);
  return true;
}

}  // namespace bb::cli

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  const bb::cli::Args args(argv + 2, argv + argc);
  std::vector<std::string> names;
  for (const auto& command : commands()) {
    names.push_back(command.name);
  }
  try {
    for (const auto& command : commands()) {
      if (name == command.name) {
        bb::configure_allocator();
        bb::configure_threads();
        return command.run(args);
      }
    }
    throw bb::Error(fmt::format(
        "unknown command '{}' (valid: {})", name, fmt::join(names, ", ")));
  } catch (const bb::Error& e) {
    std::cerr << "boundbench: " << e.what() << "\n";
  } catch (const boost::program_options::error& e) {
    std::cerr << "boundbench " << name << ": " << e.what() << "\n";
  } catch (const c10::Error& e) {
    std::cerr << "boundbench " << name << ": " << first_line(e.what_without_backtrace())
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "boundbench " << name << ": " << first_line(e.what()) << "\n";
  }
  return 2;
}
