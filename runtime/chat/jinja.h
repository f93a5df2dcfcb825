// lowbit's own Jinja subset: what chat templates use (for/if/set/namespace/macros, filters, tests,
// string and dict methods), evaluated with jinja2's semantics as transformers configures it for
// apply_chat_template (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loop controls,
// its tojson / raise_exception / strftime_now). docs/CHAT_TEMPLATES.md lists what is covered.
//
// Templates and their inputs are untrusted: every failure is a lowbit::Error, and Limits bound the
// parser's and evaluator's recursion, the loop iterations and the size of what is built, so a
// hostile template cannot exhaust the stack or memory.
//
// Thread safety: a parsed Template is immutable; render() may run on many threads at once.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "runtime/chat/jinja_value.h"

namespace lowbit::jinja {

struct Limits {
  int max_nesting = 128;            // AST height (blocks in blocks, operators in operators)
  int max_call_depth = 32;          // macros calling macros
  int max_eval_depth = 512;         // nested evaluation steps, across macro calls (the stack)
  int64_t max_output = 32 << 20;    // bytes of rendered text, and of any one string built
  int64_t max_steps = 5'000'000;    // evaluation steps, loop iterations and items built
  int64_t max_range = 100'000;      // range() length (jinja2's sandbox MAX_RANGE)
};

struct Node;

class Template {
 public:
  // Throws Error(bad_format) "chat template line L:C: ..." on a syntax error.
  explicit Template(const std::string& source, Limits limits = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with `vars` as the template's variables (messages, add_generation_prompt, ...) over
  // the globals (range, namespace, dict, raise_exception, strftime_now). Throws
  // Error(invalid_argument): a raise_exception() call carries exactly the template's message;
  // other errors name the line and column ("chat template line L:C: ...").
  std::string render(const std::map<std::string, Value>& vars) const;

 private:
  std::unique_ptr<Node> root_;
  Limits limits_;
};

}  // namespace lowbit::jinja
