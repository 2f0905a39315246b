"""dexforge: from a sentence to a simulated dexterous-hand task, trained policies and a dataset.

The layers live in the subpackages `dexforge.sim`, `dexforge.policies`, `dexforge.memory`,
`dexforge.tools`, `dexforge.agents` and `dexforge.evals` (see DESIGN.md); this package holds only
what every layer shares: where state lives, the base error type, and how OpenMP threads wait (below).
"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait for work sleep instead of spinning (torch's thread team in the PPO update and the
# policies' forward passes). Spinning threads are fastest on a machine that runs nothing else, and fall off a
# cliff beside any other busy process: measured on 2 cores (benchmarks/train_throughput.py, README "Both
# cores"), PPO in env groups ran 4059 env steps/s spinning vs 3737 passive on an idle machine, and 1993 vs
# 2435 with one busy process beside it; beside a second training, a gradient step took 340 ms vs 18 ms. Set
# OMP_WAIT_POLICY=ACTIVE for a machine that runs dexforge alone. It must be set before torch loads, so here:
# every dexforge process (the CLI, job workers, env groups) imports this first, and children inherit it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
