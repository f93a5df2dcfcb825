// The helpers every test folder uses to check an error's message and code.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "kernels/error.h"

namespace lowbit::test {

// The message of the lowbit::Error that fn throws ("" and a test failure if it throws none).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no lowbit::Error thrown";
  return "";
}

// The code of the lowbit::Error that fn throws (ErrorCode::unspecified and a test failure if it
// throws none).
template <typename Fn>
ErrorCode code_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no lowbit::Error thrown";
  return ErrorCode::unspecified;
}

}  // namespace lowbit::test
