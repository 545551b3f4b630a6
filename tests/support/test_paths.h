#pragma once
/// Where the tests find the checkout, the built CLI and the generated fixtures. The paths are
/// absolute and differ between clones, so they live in one generated file (test_paths.cpp in the
/// build tree) rather than in compile definitions: with a -D per path every test file's compile
/// command differed between clones and ccache missed on all of them. Force-included into every
/// test source (tests/CMakeLists.txt), so the macros below read as before.
namespace scoreflow::testing_paths {
extern const char* const kSourceDir;
extern const char* const kFixtureDir;
extern const char* const kCliPath;
}  // namespace scoreflow::testing_paths

#define SCOREFLOW_SOURCE_DIR (::scoreflow::testing_paths::kSourceDir)
#define SCOREFLOW_FIXTURE_DIR (::scoreflow::testing_paths::kFixtureDir)
#ifdef SCOREFLOW_HAS_CLI
#define SCOREFLOW_CLI_PATH (::scoreflow::testing_paths::kCliPath)
#endif
