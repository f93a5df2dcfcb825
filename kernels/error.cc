#include "kernels/error.h"

namespace lowbit {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::unspecified: return "unspecified";
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::io: return "io";
    case ErrorCode::bad_format: return "bad_format";
    case ErrorCode::version: return "version";
    case ErrorCode::out_of_memory: return "out_of_memory";
    case ErrorCode::context_full: return "context_full";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::internal: return "internal";
  }
  return "unknown";
}

}  // namespace lowbit
