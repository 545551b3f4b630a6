#pragma once
// The command line's side of the CPU fast path (scoreflow/cpu_fast_path.h): `--no-optimize`, which
// ModelOptions::add gives every command that loads a model, and what `info` and `bench` say about it.
#include <string>

#include "scoreflow/cpu_fast_path.h"

namespace scoreflow::cli {

/// The load options of every model this process opens (one command per process): the CPU fast path
/// on unless --no-optimize; `bench --optimize-max-batch` sets its batch limit.
LoadOptions& cli_load_options();

/// One line saying which module runs `model` on the CPU ("" for builtins and CUDA models).
std::string cpu_path_text(const Model& model);

}  // namespace scoreflow::cli
