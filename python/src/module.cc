#include "python/src/bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "lowbit's compiled core: quantized kernels, models and conversion (use the lowbit package)";
  m.attr("__version__") = LOWBIT_VERSION_STRING;
  m.attr("build_features") = LOWBIT_BUILD_FEATURES;
  lowbit::python::register_errors(m);
  lowbit::python::register_qtensor(m);
  lowbit::python::register_model(m);
  lowbit::python::register_convert(m);
  lowbit::python::register_eval(m);
}
