// lowbit tokenize: text -> token ids (or ids -> text) with a model's tokenizer.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "convert/gguf_tokenizer.h"
#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer.h"

namespace {

constexpr const char* kFooter = R"(PATH is a model or manifest folder, a tokenizer file (tokenizer.json, tokenizer.model,
vocab.json with merges.txt beside it), or a GGUF file (its tokenizer metadata). Encodes TEXT and prints the ids on one line, separated
by spaces. Put -- before a TEXT that starts with '-'.
)";

struct Options {
  std::string path;
  bool add_special = true, decode = false, lines = false, json = false, info = false;
  std::vector<std::string> args;
};

// Ids written as "1 2 3", "1,2,3" or one per argument.
std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    if (*p == ' ' || *p == ',' || *p == '\t' || *p == '\r') {
      ++p;
      continue;
    }
    int32_t id = 0;
    auto [next, ec] = std::from_chars(p, end, id);
    if (ec != std::errc() || (next < end && !std::strchr(" ,\t\r", *next))) {
      const char* stop = p;
      while (stop < end && !std::strchr(" ,\t\r", *stop)) ++stop;
      throw lowbit::Error("'" + std::string(p, stop) + "' is not a token id");
    }
    ids.push_back(id);
    p = next;
  }
  return ids;
}

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
  return out;
}

void write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

void run_lines(const lowbit::Tokenizer& tok, const Options& o) {
  std::string line;
  size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (o.decode) {
      std::string text = tok.decode(parse_ids(line));
      write(o.json ? nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
                   : text + "\n");
      continue;
    }
    std::string text = line;
    if (o.json) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        throw lowbit::Error("stdin line " + std::to_string(line_no) + " is not a JSON string");
      }
      if (!j.is_string()) throw lowbit::Error("stdin line " + std::to_string(line_no) + " is not a JSON string");
      text = j.get<std::string>();
    }
    write(ids_line(tok.encode(text, o.add_special)));
  }
}

int tokenize_main(int argc, char** argv) {
  using lowbit::cli::UsageError;
  Options o;
  bool no_bos = false;
  lowbit::cli::Args args("lowbit tokenize", "Text -> token ids (or ids -> text with --decode) with a model's tokenizer.",
                         kFooter);
  args.positional("PATH", o.path, "model or manifest folder, or tokenizer file").required();
  args.positionals("ARGS", o.args, "the TEXT to encode, or with --decode the token ids");
  args.flag("--no-bos", no_bos, "add no BOS/EOS or other special token around the text (the ids of the text only)");
  args.flag("--decode", o.decode,
            "the arguments are token ids (several per argument allowed, separated by spaces or commas); "
            "prints the text they decode to, special tokens left out");
  args.flag("--lines", o.lines,
            "read standard input instead of arguments: one text per line (the newline is not part of it), one "
            "line of ids out per line in; with --decode, one line of ids in per line of text out");
  args.flag("--json", o.json,
            "with --lines: each input text is a JSON string (so it may hold newlines), and with --decode each "
            "output text is printed as a JSON string");
  args.flag("--info", o.info, "print what was loaded (format, vocabulary size, BOS and EOS ids) to stderr");
  if (!args.parse(argc, argv)) return 0;
  o.add_special = !no_bos;
  if (o.json && !o.lines) throw UsageError("--json goes with --lines");
  if (o.lines && !o.args.empty()) throw UsageError("--lines reads standard input and takes no TEXT or ID arguments");
  if (!o.lines && !o.decode && o.args.size() != 1) throw UsageError("expected one TEXT argument (quote it)");
  if (!o.lines && o.decode && o.args.empty()) throw UsageError("--decode expects token ids");

  auto tok = o.path.ends_with(".gguf")
                 ? lowbit::load_tokenizer_files(lowbit::gguf_tokenizer_files(lowbit::GgufFile::open(o.path)), o.path)
                 : lowbit::load_tokenizer(o.path);
  if (o.info) {
    std::string eos;
    for (int32_t id : tok->eos_ids()) eos += " " + std::to_string(id);
    std::fprintf(stderr, "%s\nvocab size %d, bos %d, eos%s\n", tok->description().c_str(), tok->vocab_size(),
                 tok->bos_id(), eos.empty() ? " none" : eos.c_str());
  }
  if (o.lines) {
    run_lines(*tok, o);
  } else if (o.decode) {
    std::vector<int32_t> ids;
    for (const std::string& a : o.args)
      for (int32_t id : parse_ids(a)) ids.push_back(id);
    write(tok->decode(ids) + "\n");
  } else {
    write(ids_line(tok->encode(o.args[0], o.add_special)));
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

lowbit::cli::Registrar reg("tokenize", "text -> token ids, or ids -> text (--decode)", tokenize_main);

}  // namespace
