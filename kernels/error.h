// The one error type of the library. Everything below the C API throws lowbit::Error with a
// message that names the file, tensor or field at fault, and a code that says what kind of
// failure it is; the C API and the Python module turn it into a status code / exception by the
// code, never by reading the message. Nothing in the library calls exit() or abort() on input.
#pragma once

#include <stdexcept>
#include <string>

namespace lowbit {

// What went wrong, for callers that must react differently (a C status, an HTTP status) rather
// than show the message.
enum class ErrorCode {
  // The throw site cannot tell: most parser errors, where the same check serves a file from disk
  // and a value from the caller. The caller's context decides (the C API maps it per call: a
  // bad file for a load, a bad argument elsewhere).
  unspecified,
  invalid_argument,  // a value the caller passed is out of range or malformed
  not_found,         // a path, tensor or id that does not exist
  io,                // a file that exists but cannot be read or written
  bad_format,        // a malformed manifest, checkpoint, config or tokenizer file
  version,           // a file newer than this library understands
  out_of_memory,     // the request would not fit (checked up front) or an allocation failed
  context_full,      // a sequence has no room for more tokens
  cancelled,         // the caller asked to stop
  internal,          // a bug
};

const char* error_code_name(ErrorCode code);  // "invalid_argument", ...

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_ = ErrorCode::unspecified;
};

// Raised when an input file or manifest is newer than this reader understands (code version);
// a class of its own so the Python module can raise lowbit.VersionError for it.
class VersionError : public Error {
 public:
  explicit VersionError(const std::string& message) : Error(ErrorCode::version, message) {}
};

}  // namespace lowbit
