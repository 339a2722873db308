#pragma once
// Thread settings. Two thread pools fighting (OpenBLAS's and torch's) raised p99 forward
// latency from 0.4 ms to 31 ms on the 2-core machine: OpenBLAS runs single-threaded and
// torch's intra-op pool is sized from the core count (see models/runtime.h).

namespace edgefm {

// Pins OpenBLAS to one thread when OpenBLAS is loaded. Call once at start-up.
void pin_openblas_to_one_thread();

// Number of hardware threads (at least 1).
int hardware_threads();

}  // namespace edgefm
