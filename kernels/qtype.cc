#include "kernels/qtype.h"

#include <charconv>

#include "kernels/error.h"

namespace lowbit {

const TypeTraits& traits(const QType& t) {
  for (const auto& tr : type_table())
    if (tr.base == t.base && (t.base != Base::q || (tr.bits == t.bits && tr.scheme == t.scheme)))
      return tr;
  throw Error("no weight type with " + std::to_string(t.bits) + " bits");
}

bool is_quantized(const QType& t) { return t.base == Base::q; }

void check_type(const QType& t) {
  if (t.base != Base::q) return;
  if (t.bits != 1 && t.bits != 2 && t.bits != 4 && t.bits != 8)
    throw Error("unsupported bit width " + std::to_string(t.bits) + " (supported: 1, 2, 4, 8)");
  if (t.group != 0 && t.group != 32 && t.group != 64 && t.group != 128 && t.group != 256)
    throw Error("unsupported group size " + std::to_string(t.group) +
                " (supported: 32, 64, 128, 256, row)");
  if (t.scales == ScaleCode::c6 && (t.scheme != Scheme::asym || t.group == 0))
    throw Error("6-bit scale codes (_s6) need the asym scheme and a group size (not per row)");
}

std::string type_name(const QType& t) {
  switch (t.base) {
    case Base::f32: return "f32";
    case Base::f16: return "f16";
    case Base::bf16: return "bf16";
    case Base::q: break;
  }
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive: GCC bug 105651) on
  // "literal" + std::string&&, which inserts at the front.
  std::string name = "q";
  name += std::to_string(t.bits);
  if (t.group == 0) {
    name += "_row_";
  } else {
    name += "_g";
    name += std::to_string(t.group);
    name += "_";
  }
  name += t.scheme == Scheme::sym ? "sym" : "asym";
  if (t.scales == ScaleCode::c6) name += "_s6";
  return name;
}

QType parse_type(std::string_view name) {
  const std::string full(name);
  if (name == "f32" || name == "fp32") return {Base::f32, 32};
  if (name == "f16" || name == "fp16") return {Base::f16, 16};
  if (name == "bf16") return {Base::bf16, 16};
  auto fail = [&]() -> QType {
    throw Error("unknown weight type '" + full +
                "' (expected f32, f16, bf16, qB, or qB_gG_S / qB_row_S with B in 1,2,4,8, G in "
                "32,64,128,256, S sym|asym, optionally _s6 after asym)");
  };
  if (name.size() < 2 || name[0] != 'q') return fail();
  QType t{Base::q, 0, Scheme::sym, 32};
  int bits = 0;
  const char* p = name.data() + 1;
  const char* end = name.data() + name.size();
  auto r = std::from_chars(p, end, bits);
  if (r.ec != std::errc()) return fail();
  t.bits = (uint8_t)bits;
  // Short form "qB": group 32, symmetric at 8 bits and asymmetric below (the accurate defaults).
  t.scheme = bits == 8 ? Scheme::sym : Scheme::asym;
  std::string_view rest(r.ptr, end - r.ptr);
  if (!rest.empty()) {
    if (rest.substr(0, 5) == "_row_") {
      t.group = 0;
      rest.remove_prefix(5);
    } else if (rest.substr(0, 2) == "_g") {
      int g = 0;
      auto r2 = std::from_chars(rest.data() + 2, rest.data() + rest.size(), g);
      if (r2.ec != std::errc() || r2.ptr == rest.data() + rest.size() || *r2.ptr != '_') return fail();
      t.group = (uint32_t)g;
      rest = std::string_view(r2.ptr + 1, rest.data() + rest.size() - (r2.ptr + 1));
    } else {
      return fail();
    }
    if (rest.size() > 3 && rest.substr(rest.size() - 3) == "_s6") {
      t.scales = ScaleCode::c6;
      rest.remove_suffix(3);
    }
    if (rest == "sym") t.scheme = Scheme::sym;
    else if (rest == "asym") t.scheme = Scheme::asym;
    else return fail();
  }
  try {
    check_type(t);
  } catch (const Error& e) {
    throw Error("weight type '" + full + "': " + e.what());
  }
  return t;
}

double bits_per_weight(const QType& t, int64_t n, int64_t k) {
  return 8.0 * (double)q_layout(t, n, k).bytes / ((double)n * (double)k);
}

const char* quantizer_name(Quantizer q) { return q == Quantizer::rtn ? "rtn" : "search"; }

Quantizer parse_quantizer(std::string_view name) {
  if (name == "rtn") return Quantizer::rtn;
  if (name == "search") return Quantizer::search;
  throw Error(ErrorCode::invalid_argument, "unknown quantizer '" + std::string(name) + "' (expected rtn or search)");
}

}  // namespace lowbit
