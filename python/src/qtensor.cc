// QTensor: one weight matrix in a lowbit type, with quantize(), dequantize() and matmul().
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "convert/convert.h"
#include "kernels/error.h"
#include "kernels/matmul.h"
#include "kernels/qtype.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "python/src/bindings.h"

namespace lowbit::python {
namespace {

class QTensor {
 public:
  QTensor(const QType& t, int64_t n, int64_t k)
      : type_(t), n_(n), k_(k), bytes_(q_layout(t, n, k).bytes),
        // Quantized kernels read whole chunks from 64-byte aligned sections, as in weights.bin.
        storage_(static_cast<uint8_t*>(std::aligned_alloc(kSectionAlign, (size_t)round_up(bytes_, kSectionAlign))),
                 &std::free) {
    if (!storage_) throw std::bad_alloc();
    std::memset(storage_.get(), 0, (size_t)round_up(bytes_, kSectionAlign));
  }

  QMatrix matrix() const { return {type_, n_, k_, storage_.get()}; }
  uint8_t* data() { return storage_.get(); }
  const QType& type() const { return type_; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t nbytes() const { return bytes_; }

 private:
  QType type_;
  int64_t n_, k_;
  int64_t bytes_;
  std::unique_ptr<uint8_t, decltype(&std::free)> storage_;
};

// The type convert gives a linear layer under (bits, group, scheme): one rule for both doors.
QType linear_type(int bits, uint32_t group, const std::optional<std::string>& scheme) {
  ConvertOptions opt;
  if (bits != 1 && bits != 2 && bits != 4 && bits != 8 && bits != 16 && bits != 32)
    throw Error(ErrorCode::invalid_argument, "bits " + std::to_string(bits) + " is not one of 1, 2, 4, 8, 16, 32");
  opt.bits = bits;
  opt.group = group;
  if (scheme) {
    if (*scheme != "sym" && *scheme != "asym") throw Error(ErrorCode::invalid_argument, "scheme must be 'sym', 'asym' or None, not '" + *scheme + "'");
    opt.scheme = (int)(*scheme == "sym" ? Scheme::sym : Scheme::asym);
  }
  return recipe_type(opt, "", false, false);
}

std::unique_ptr<QTensor> quantize_array(const FloatArray& w, const QType& t, const std::string& quantizer) {
  if (w.ndim() != 2) throw Error(ErrorCode::invalid_argument, "quantize: expected a 2-D (n, k) array, got " + std::to_string(w.ndim()) + "-D");
  const int64_t n = w.shape(0), k = w.shape(1);
  if (n <= 0 || k <= 0) throw Error(ErrorCode::invalid_argument, "quantize: the array is empty");
  check_type(t);
  const Quantizer qz = parse_quantizer(quantizer);
  auto q = std::make_unique<QTensor>(t, n, k);
  py::gil_scoped_release nogil;
  quantize(t, w.data(), n, k, q->data(), qz, &ThreadPool::global());
  return q;
}

py::array_t<float> dequantize_tensor(const QTensor& q) {
  py::array_t<float> out({q.n(), q.k()});
  float* dst = out.mutable_data();
  py::gil_scoped_release nogil;
  dequantize(q.type(), q.matrix().data, q.n(), q.k(), dst, &ThreadPool::global());
  return out;
}

// x: (k,) or (m, k) -> (n,) or (m, n).
py::array_t<float> matmul_array(const QTensor& q, const FloatArray& x) {
  if (x.ndim() != 1 && x.ndim() != 2) throw Error(ErrorCode::invalid_argument, "matmul: x must be 1-D (k,) or 2-D (m, k)");
  const int64_t k = x.shape(x.ndim() - 1), m = x.ndim() == 2 ? x.shape(0) : 1;
  if (k != q.k())
    throw Error(ErrorCode::invalid_argument, "matmul: x has " + std::to_string(k) + " columns but the weights have k = " + std::to_string(q.k()));
  if (m == 0) throw Error(ErrorCode::invalid_argument, "matmul: x has no rows");
  py::array_t<float> y = x.ndim() == 2 ? py::array_t<float>({m, q.n()}) : py::array_t<float>(q.n());
  float* dst = y.mutable_data();
  const float* src = x.data();
  py::gil_scoped_release nogil;
  matmul(q.matrix(), src, m, dst);
  return y;
}

}  // namespace

void register_qtensor(py::module_& m) {
  py::class_<QTensor>(m, "QTensor", "A weight matrix (n, k) stored in a lowbit type.")
      .def_property_readonly("shape", [](const QTensor& q) { return py::make_tuple(q.n(), q.k()); })
      .def_property_readonly("type", [](const QTensor& q) { return type_name(q.type()); })
      .def_property_readonly("nbytes", &QTensor::nbytes, "bytes of storage: codes, scales and minimums")
      .def_property_readonly("bits_per_weight",
                             [](const QTensor& q) { return bits_per_weight(q.type(), q.n(), q.k()); })
      .def("dequantize", &dequantize_tensor, "The weights as float32 (n, k).")
      .def("tobytes",
           [](const QTensor& q) { return py::bytes(reinterpret_cast<const char*>(q.matrix().data), (size_t)q.nbytes()); },
           "The matrix in lowbit's storage layout (docs/FORMAT.md).")
      .def("__repr__", [](const QTensor& q) {
        return "QTensor(shape=(" + std::to_string(q.n()) + ", " + std::to_string(q.k()) + "), type='" +
               type_name(q.type()) + "')";
      });

  m.def(
      "linear_type",
      [](int bits, uint32_t group, const std::optional<std::string>& scheme) {
        return type_name(linear_type(bits, group, scheme));
      },
      py::arg("bits"), py::arg("group"), py::arg("scheme") = py::none(),
      "The type name convert gives linear layers for these options (group 0: per row).");
  m.def(
      "quantize",
      [](const FloatArray& w, const std::string& type, const std::string& quantizer) {
        return quantize_array(w, parse_type(type), quantizer);
      },
      py::arg("array"), py::arg("type"), py::arg("quantizer") = "search",
      "Quantizes a float32 (n, k) array to a type name ('q4_g32_asym', 'f16', ...).");
  m.def("matmul", &matmul_array, py::arg("w"), py::arg("x"),
        "y = x @ w.T with lowbit's kernels (int8 activations for quantized weights).");
}

}  // namespace lowbit::python
