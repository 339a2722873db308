# Sourced by the scripts: thread settings for torch on small machines.
# OpenBLAS single-threaded (two pools fighting raised p99 forward latency from 0.4 to 31 ms
# here); OpenMP threads sleep instead of spinning when the cores are shared.
export OPENBLAS_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
