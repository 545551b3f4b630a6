#pragma once
// Batch rows split over concurrent CPU thread teams (LoadOptions::cpu_teams; docs/performance.md,
// "CPU", session 16): a few calls on contiguous parts of the batch, each with a share of the cores,
// instead of one call whose small layers leave most cores waiting at each parallel region's end.
#include <cstdint>
#include <functional>

namespace scoreflow::detail {

/// How many teams a CPU call of `batch` rows runs as with `threads` intra-op threads. `option` is
/// LoadOptions::cpu_teams: 1 = one team (no split); N > 1 = min(batch, N, threads); 0 = automatic:
/// min(batch, threads / 4) for calls of at least kAutoTeamsMinBatch rows, else 1, so that each team
/// keeps at least 4 threads (one team on machines with fewer than 8 threads).
int cpu_team_count(int64_t batch, int threads, int option);
constexpr int64_t kAutoTeamsMinBatch = 32;

/// The fewest rows a call needs to be split under `option` (LoadOptions::cpu_teams, not 1).
inline int64_t cpu_team_min_rows(int option) { return option == 0 ? kAutoTeamsMinBatch : 2; }

/// Runs part(0), ..., part(teams - 1) concurrently and returns when all have finished: part k on
/// the k-th worker of a pool of `teams` threads, each with threads / teams intra-op threads (a pool
/// is made once per (teams, threads) and kept until release_cpu_teams). The caller's
/// thread-local state (grad mode, inference mode) is passed to the workers. The first exception a
/// part throws is rethrown after all parts have finished.
void run_on_cpu_teams(int teams, int threads, const std::function<void(int)>& part);

/// Ends every pool's workers, and with them their OpenMP threads (a pool still running a call ends
/// when that call returns). While they exist the process holds more OpenMP threads than cores, and
/// libgomp then shortens the spin-wait of every parallel region, which slowed one-row calls by
/// 1.5-1.7x (docs/performance.md, "CPU", session 17); calls that run whole release them.
void release_cpu_teams();

/// How many team workers exist now (tests).
int cpu_team_workers();

}  // namespace scoreflow::detail
