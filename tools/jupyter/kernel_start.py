"""Starting the project's kernel headless again, on new ports, when it dies before it is ready.

    from kernel_start import until_alive
    result = until_alive(lambda: start_and_use_a_kernel(), "00_walkthrough.ipynb")

Jupyter picks five free ports, writes them into the connection file and starts the kernel; another
process can take one of them in between. The kernel then exits at once, naming the port
(tools/jupyter/kernels/bias-init-tslab/start_tslab.js), and JupyterLab's restarter starts it again
(every 3 s, up to 5 times; on the same ports with jupyter_client 8.10, measured). A headless client
(nbclient, jupyter_client's KernelManager) has no restarter: it raises "Kernel died before
replying to kernel_info". until_alive() calls START again, up to TRIES times, when that is what it
raised, and only then; each call must start its own kernel (a new KernelManager picks new ports).
Any other error, or a kernel that dies TRIES times, is raised as it is.
"""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

T = TypeVar("T")
TRIES = 3
DIED_AT_START = "Kernel died before replying to kernel_info"


def until_alive(start: Callable[[], T], what: str, log=sys.stderr) -> T:
    for attempt in range(1, TRIES + 1):
        try:
            return start()
        except RuntimeError as error:
            if DIED_AT_START not in str(error) or attempt == TRIES:
                raise
            print(f"{what}: the kernel died before it was ready (start {attempt} of {TRIES}; its stderr says why); "
                  "starting it again on new ports", file=log, flush=True)
    raise AssertionError("unreachable")
