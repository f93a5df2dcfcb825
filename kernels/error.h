// The one error type of the library. Everything below the C API throws lowbit::Error with a
// message that names the file, tensor or field at fault; the C API and the Python module turn
// it into a status code / exception. Nothing in the library calls exit() or abort() on input.
#pragma once

#include <stdexcept>
#include <string>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Raised when an input file or manifest is newer than this reader understands; kept distinct so
// the C API can report it with its own status code.
class VersionError : public Error {
 public:
  using Error::Error;
};

}  // namespace lowbit
