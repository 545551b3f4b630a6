// Default ASan/UBSan/LSan options, compiled into every scoreflow executable when
// SCOREFLOW_SANITIZE=ON, so that the test binary, the CLI it spawns and gtest discovery all run
// under the same settings without an environment to remember. ASAN_OPTIONS etc. still override.
//
// Why each setting (LibTorch 1.13 from Debian is not instrumented; see docs/reliability.md):
//  - detect_leaks=0: LibTorch's and protobuf's static registries are never freed; LSan reports
//    hundreds of "leaks" from them at exit. Leaks in our own code are not what this job hunts.
//  - alloc_dealloc_mismatch=0: memory allocated inside uninstrumented libtorch_cpu with new[]
//    and released by inlined header code (and vice versa) looks mismatched to ASan.
//  - detect_odr_violation=0: libtorch and its bundled copies (fmt, sleef) export duplicate
//    globals that ASan's ODR check flags although none of them is ours.
//  - halt_on_error / abort_on_error and print_stacktrace make any finding fail the test loudly.

extern "C" {

const char* __asan_default_options() {
  return "detect_leaks=0:alloc_dealloc_mismatch=0:detect_odr_violation=0:"
         "strict_string_checks=1:check_initialization_order=1:"
         "halt_on_error=1:abort_on_error=0:print_summary=1";
}

const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }

const char* __lsan_default_options() { return "detect_leaks=0"; }

}  // extern "C"
