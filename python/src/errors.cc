// lowbit::Error -> lowbit.Error, lowbit::VersionError -> lowbit.VersionError (a subclass), each
// carrying the library's message unchanged.
#include "kernels/error.h"
#include "python/src/bindings.h"

namespace lowbit::python {

void register_errors(py::module_& m) {
  // pybind11 tries translators newest first, so the subclass is registered after its base.
  auto& error = py::register_exception<Error>(m, "Error", PyExc_RuntimeError);
  error.doc() = "An error reported by lowbit; the message names the file, tensor or field at fault.";
  auto& version = py::register_exception<VersionError>(m, "VersionError", error);
  version.doc() = "A file newer than this version of lowbit understands.";
}

}  // namespace lowbit::python
