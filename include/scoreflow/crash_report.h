#pragma once
/// A crash (SIGSEGV, SIGBUS) is a bug in scoreflow or below it. `install_crash_report()` makes the
/// process say so on one `error:` line on stderr and, with SCOREFLOW_BACKTRACE=1 in the environment,
/// print the stack: the unwinder's frames, then the faulting address, the PC and the code addresses
/// found in the top stack words (which still name the caller when the crash is a jump to a bad
/// address, past which the unwinder cannot go); then the process dies of the same signal. The
/// `scoreflow` executable installs it first thing; a program embedding the library may do the same.

namespace scoreflow::io {

void install_crash_report();

}  // namespace scoreflow::io
