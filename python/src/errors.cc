// lowbit::Error -> lowbit.Error, lowbit::VersionError -> lowbit.VersionError (a subclass), each
// carrying the library's message unchanged and its code as the attribute `code`
// ("invalid_argument", "context_full", ...; see kernels/error.h), so callers branch on the code
// rather than on the text.
#include "kernels/error.h"
#include "python/src/bindings.h"

namespace lowbit::python {

namespace {

// The exception types, created once with the module and never freed (the interpreter may
// outlive any destructor order we could arrange).
PyObject* g_error = nullptr;
PyObject* g_version_error = nullptr;

void raise(PyObject* type, const Error& e) {
  py::object exc = py::reinterpret_borrow<py::object>(type)(py::str(e.what()));
  exc.attr("code") = py::str(error_code_name(e.code()));
  PyErr_SetObject(type, exc.ptr());
}

}  // namespace

void register_errors(py::module_& m) {
  auto& error = *new py::exception<Error>(m, "Error", PyExc_RuntimeError);
  error.doc() = "An error reported by lowbit; the message names the file, tensor or field at fault, and `code` "
                "says what kind of failure it is ('invalid_argument', 'context_full', ...).";
  auto& version = *new py::exception<VersionError>(m, "VersionError", error.ptr());
  version.doc() = "A file newer than this version of lowbit understands.";
  g_error = error.ptr();
  g_version_error = version.ptr();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const VersionError& e) {
      raise(g_version_error, e);
    } catch (const Error& e) {
      raise(g_error, e);
    }
  });
}

}  // namespace lowbit::python
