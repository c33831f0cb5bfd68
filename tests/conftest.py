"""Suite-wide settings."""

import os

# One OpenMP thread per process: CI machines have 2 cores, and oversubscribed torch threads
# slow every op down 10-20x when the other core is busy.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
