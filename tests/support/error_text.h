#pragma once
/// The text of the scoreflow::Error a call throws, for tests that assert refusals and their messages.
#include <string>
#include <utility>

#include "scoreflow/error.h"

namespace scoreflow::testing_support {

/// What `fn` throws as scoreflow::Error, or "(no error)" when it returns; other exceptions pass
/// through (a test failure of their own).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace scoreflow::testing_support
