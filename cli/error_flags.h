#pragma once
// Library errors name fields (`batch`, `num_images`); the user typed flags. This is the one place
// that knows which flag sets which field (docs/design.md §7).
#include <string>

#include "scoreflow/error.h"

namespace scoreflow::cli {

/// The flag that sets library field `field` ("num_images" -> "--num-images"), or "" when no flag does.
std::string flag_for_field(const std::string& field);
/// The error's message with each field it names spelled as its flag.
std::string flag_message(const Error& e);

}  // namespace scoreflow::cli
