// convert(): HF directory -> manifest directory, with a progress callback and Ctrl-C.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "convert/convert.h"
#include "kernels/error.h"
#include "python/src/bindings.h"

namespace lowbit::python {
namespace {

py::dict convert(const std::string& hf_dir, const std::string& out_dir, int bits, uint32_t group,
                 const std::optional<std::string>& scheme, const std::string& quantizer,
                 const std::vector<std::pair<std::string, std::string>>& keep, bool force, int threads,
                 bool allow_nonfinite, const py::object& progress) {
  // Checked here too: convert_model's own message names the CLI flag (--bits).
  if (bits != 1 && bits != 2 && bits != 4 && bits != 8 && bits != 16 && bits != 32)
    throw Error("bits=" + std::to_string(bits) + " is not one of 1, 2, 4, 8, 16, 32");
  ConvertOptions opt;
  opt.bits = bits;
  opt.group = group;
  if (scheme) {
    if (*scheme != "sym" && *scheme != "asym") throw Error(ErrorCode::invalid_argument, "scheme must be 'sym', 'asym' or None, not '" + *scheme + "'");
    opt.scheme = (int)(*scheme == "sym" ? Scheme::sym : Scheme::asym);
  }
  opt.quantizer = parse_quantizer(quantizer);
  opt.keep = keep;
  opt.force = force;
  if (threads < 0) throw Error(ErrorCode::invalid_argument, "threads must be >= 0");
  opt.threads = threads;
  opt.allow_nonfinite = allow_nonfinite;
  // Called on this thread after each tensor: a pending Ctrl-C (or the callback's exception)
  // propagates out of convert_model, which removes its temporary directory on the way.
  opt.progress = [&](const ConvertProgress& p) {
    py::gil_scoped_acquire gil;
    check_signals();
    if (!progress.is_none()) progress(p.tensor, p.tensors, p.name, p.bytes_done, p.bytes_total);
  };
  ConvertSummary s;
  {
    py::gil_scoped_release nogil;
    s = convert_model(hf_dir, out_dir, opt);
  }
  py::dict d;
  d["tensors"] = s.tensors;
  d["weights"] = s.weights;
  d["input_bytes"] = s.input_bytes;
  d["output_bytes"] = s.output_bytes;
  d["bits_per_weight"] = s.bits_per_weight();
  d["nonfinite_replaced"] = s.nonfinite_replaced;
  d["seconds"] = s.seconds;
  d["path"] = out_dir;
  return d;
}

}  // namespace

void register_convert(py::module_& m) {
  m.def("convert", &convert, py::arg("hf_dir"), py::arg("out_dir"), py::arg("bits") = 4, py::arg("group") = 32,
        py::arg("scheme") = py::none(), py::arg("quantizer") = "search",
        py::arg("keep") = std::vector<std::pair<std::string, std::string>>{}, py::arg("force") = false,
        py::arg("threads") = 0, py::arg("allow_nonfinite") = false, py::arg("progress") = py::none(),
        "Converts a HuggingFace directory into a lowbit manifest directory; returns a summary dict.\n"
        "progress(tensor, tensors, name, bytes_done, bytes_total) is called after each tensor.");
}

}  // namespace lowbit::python
