// lowbit._core: the compiled half of the Python package. Each file registers one class (or one
// group of functions) with a register_* function that module.cc calls; the pure-Python package
// python/lowbit/ builds the public API on top.
//
// Every call that computes releases the GIL; callbacks into Python take it back for the call.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
// In every file: type casters must be the same in all translation units (ODR).
#include <pybind11/stl.h>

namespace lowbit::python {

namespace py = pybind11;

// float32, C-contiguous: arrays that already are pass through without a copy.
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

void register_errors(py::module_& m);   // lowbit.Error, lowbit.VersionError
void register_qtensor(py::module_& m);  // QTensor, quantize, matmul
void register_model(py::module_& m);    // Model
void register_convert(py::module_& m);  // convert
void register_eval(py::module_& m);     // evaluate, when the library has eval/eval.h

// With the GIL held: raises (as py::error_already_set) what a pending signal's handler raised,
// KeyboardInterrupt for Ctrl-C. Signals reach only the main thread; elsewhere it does nothing.
inline void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

}  // namespace lowbit::python
