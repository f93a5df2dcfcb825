// The one helper every test folder uses to check an error's message.
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

}  // namespace lowbit::test
