// evaluate(): the accuracy harness (eval/eval.h), a quantized model against its FP32 reference
// on a text file. Bound only when the library has the harness.
#include "python/src/bindings.h"

#if __has_include("eval/eval.h")
#include <memory>
#include <optional>
#include <string>

#include "convert/load.h"
#include "kernels/error.h"
#include "eval/eval.h"
#include "runtime/mapped_file.h"
#include "runtime/model.h"

namespace lowbit::python {
namespace {

py::object evaluate_models(const std::string& model_dir, const std::string& text_path,
                           const std::optional<std::string>& ref_dir, int64_t ctx, int64_t max_tokens, int threads,
                           const std::optional<std::string>& ref_logits, const std::optional<std::string>& save_ref,
                           const py::object& progress) {
  if (!ref_dir && !ref_logits) throw Error(ErrorCode::invalid_argument, "evaluate: give ref (an FP32 manifest) or ref_logits (a saved reference)");
  EvalOptions opt;
  opt.ref_logits = ref_logits.value_or("");
  opt.save_ref = save_ref.value_or("");
  // Called on this thread after each window: Ctrl-C (or the callback's exception) stops the run.
  opt.progress = [&](int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    check_signals();
    if (!progress.is_none()) progress(done, total);
  };
  std::string json;
  {
    py::gil_scoped_release nogil;
    const LoadParams lp = eval_load_params(threads, ctx);
    std::unique_ptr<Model> quant = load_model(model_dir, lp);
    std::unique_ptr<Model> ref = ref_dir && !ref_logits ? load_model(*ref_dir, lp) : nullptr;
    const EvalWindows windows = make_windows(quant->tokenizer(), read_file(text_path, "the text file"), text_path, ctx, max_tokens);
    json = to_json(evaluate(*quant, ref.get(), windows, opt)).dump();
  }
  return py::module_::import("json").attr("loads")(json);
}

}  // namespace

void register_eval(py::module_& m) {
  m.def("evaluate", &evaluate_models, py::arg("model"), py::arg("text"), py::arg("ref") = py::none(),
        py::arg("ctx") = 256, py::arg("max_tokens") = 0, py::arg("threads") = 0, py::arg("ref_logits") = py::none(),
        py::arg("save_ref") = py::none(), py::arg("progress") = py::none(),
        "Measures a quantized manifest against its FP32 reference on a text file: perplexity, KL\n"
        "divergence and top-1 agreement with 95% intervals, as a dict (see eval/eval.h).");
}

}  // namespace lowbit::python
#else
namespace lowbit::python {
void register_eval(py::module_&) {}
}  // namespace lowbit::python
#endif
