// boundbench: the command line. Sub-commands live in bench/cli_<name>.cpp.
// User errors print one line and exit 2; nothing else is printed on failure.
#include <functional>
#include <iostream>
#include <limits>

#include <torch/torch.h>

#include "bench/cli.h"
#include "core/row_kernels.h"
#include "core/error.h"
#include "core/runtime.h"
#include "datasets/dataset.h"
#include "models/zoo.h"

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
      {"bound", "run one lower bound on test images: median bound, cost, tightness against an attack",
       bb::cli::run_bound},
      {"run", "run a suite: every method on the same samples, records, summary table (configs/*.ini)",
       bb::cli::run_run},
      {"compare", "compare two runs' summaries: tightness, violations, distortion, time",
       bb::cli::run_compare},
      {"merge", "join the shard folders of a run (run --shard I/N) into one run folder",
       bb::cli::run_merge},
  };
  return table;
}

constexpr size_t kHelpWidth = 80;

// `text` in lines of at most kHelpWidth columns, every line after the first
// indented by `indent` columns (the first continues a line of that width).
std::string wrap(const std::string& text, size_t indent) {
  std::string out;
  size_t column = indent;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find(' ', begin);
    if (end == std::string::npos) {
      end = text.size();
    }
    const std::string word = text.substr(begin, end - begin);
    if (column > indent && column + 1 + word.size() > kHelpWidth) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (column > indent) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    begin = end + 1;
  }
  return out;
}

std::string environment_help() {
  std::string zoo;
  try {
    zoo = bb::default_zoo_dir();
  } catch (const std::exception& e) {
    zoo = e.what();
  }
  const auto entry = [](const char* name, const std::string& text) {
    return fmt::format("  {:<21}{}\n", name, wrap(text, 23));
  };
  return "environment:\n" +
      entry("BOUNDBENCH_DATA_DIR",
            "the data folder (--data-dir overrides it); unset: $XDG_CACHE_HOME/boundbench, "
            "else ~/.cache/boundbench. Now: " + bb::cli::data_dir_help()) +
      entry("BOUNDBENCH_ZOO_DIR",
            fmt::format("the model zoo (manifest.json and checkpoints); unset: {}/models/zoo. Now: {}",
                        BOUNDBENCH_SOURCE_DIR, zoo));
}

void print_usage(std::ostream& out) {
  out << "usage: boundbench COMMAND [OPTIONS]   (boundbench COMMAND --help)\n\n"
      << "commands:\n";
  for (const auto& command : commands()) {
    out << fmt::format("  {:<10} {}\n", command.name, command.summary);
  }
  out << "\n" << environment_help();
}

// The options, one per line: "  --name arg (=default) (required)  description".
std::string options_help(const boost::program_options::options_description& options) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const auto& option : options.options()) {
    std::string name = option->format_name();
    const std::string parameter = option->format_parameter();
    if (!parameter.empty()) {
      name += " " + parameter;
    }
    if (option->semantic()->is_required()) {
      name += " (required)";
    }
    width = std::max(width, name.size());
    rows.emplace_back(name, option->description());
  }
  width = std::min<size_t>(width, 34) + 4;
  std::string out;
  for (const auto& [name, description] : rows) {
    out += "  " + name;
    if (name.size() + 2 > width - 2) {
      out += "\n" + std::string(width, ' ');
    } else {
      out += std::string(width - 2 - name.size(), ' ');
    }
    out += wrap(description, width) + "\n";
  }
  return out;
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
  // Every positional argument lands in this hidden option, to be refused by name.
  constexpr const char* kStray = "unexpected-argument";
  po::options_description all;
  all.add(options).add_options()("help,h", "print this help");
  po::options_description parsed;
  parsed.add(all).add_options()(kStray, po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add(kStray, -1);
  const int style =
      po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  po::store(
      po::command_line_parser(args).options(parsed).positional(positional).style(style).run(),
      values);
  if (values.count("help")) {
    std::cout << usage << "\n\n"
              << "options:\n"
              << options_help(all) << "\n"
              << environment_help();
    return false;
  }
  if (values.count(kStray)) {
    throw po::error(fmt::format(
        "unexpected argument '{}' (every value follows its --option)",
        values[kStray].as<std::vector<std::string>>().front()));
  }
  po::notify(values);
  return true;
}

Args split_paths(
    const Args& args,
    const boost::program_options::options_description& options,
    std::vector<std::string>& paths) {
  Args rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      rest.push_back(arg);
      const size_t equals = arg.find('=');
      const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
      const auto* option = options.find_nothrow(name, false);
      if (option != nullptr && equals == std::string::npos && option->semantic()->max_tokens() > 0 &&
          i + 1 < args.size()) {
        rest.push_back(args[++i]);
      }
    } else if (arg.empty() || arg[0] != '-' || arg == "-") {
      paths.push_back(arg);
    } else {
      rest.push_back(arg);
    }
  }
  return rest;
}

std::string zoo_models_help() {
  try {
    const std::string zoo = default_zoo_dir();
    std::vector<std::string> names;
    const auto manifest = read_manifest(zoo);
    for (const auto& m : manifest["models"]) {
      names.push_back(m.value("name", "?"));
    }
    return names.empty() ? fmt::format("none in {}", zoo) : fmt::format("{}", fmt::join(names, ", "));
  } catch (const std::exception& e) {
    return fmt::format("unknown: {}", e.what());
  }
}

std::string data_dir_help() {
  try {
    return default_data_dir();
  } catch (const std::exception& e) {
    return e.what();
  }
}

uint64_t parse_seed(const std::string& text, const std::string& option) {
  const bool digits = !text.empty() && text.size() <= 20 &&
      text.find_first_not_of("0123456789") == std::string::npos;
  uint64_t value = 0;
  bool fits = digits;
  for (size_t i = 0; fits && i < text.size(); ++i) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    fits = !__builtin_mul_overflow(value, uint64_t{10}, &value) &&
        !__builtin_add_overflow(value, digit, &value);
  }
  BB_CHECK(
      fits,
      "{}: expected an integer from 0 to {}, got '{}'",
      option,
      std::numeric_limits<uint64_t>::max(),
      text);
  return value;
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
        bb::detail::row_kernel_isa();  // applies BB_ROW_KERNELS: a bad name fails here, naming it
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
