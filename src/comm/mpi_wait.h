#pragma once
// Waiting for a non-blocking MPI request without taking a core: Open MPI
// busy-polls inside its blocking calls (with sched_yield at best), and a
// waiting rank would take a core from ranks on its node that have work.
#include <chrono>

#include <mpi.h>

namespace bs {

// MPI_Test until `req` completes: the first `spins` tests back to back (a
// request about to complete costs no sleep), then one sleep of `nap` between
// tests, which bounds the added latency.
void wait_with_naps(MPI_Request& req, std::chrono::microseconds nap, int spins = 0);

}  // namespace bs
