"""Child process for test/notebooks.test.ts: the project's kernel as Jupyter starts it.

    .venv/bin/python test/helpers/kernel_protocol.py STDERR_FILE [CODE]

Starts the kernelspec bias-init-tslab (found through JUPYTER_PATH, which the caller sets) with
jupyter_client, the library JupyterLab's server and nbclient use, with the kernel's stderr (what
lands in the Jupyter server's log) going to STDERR_FILE. Asks for kernel_info and for history, runs
CODE if given, shuts the kernel down, and prints one JSON line: the kernel_info reply's
language_info, the history reply's content (null when none came within 10 s) and CODE's outputs.
"""
from __future__ import annotations

import json
import queue
import sys

from jupyter_client.manager import KernelManager


def main() -> int:
    stderr_file, code = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
    outputs: list[dict] = []
    with open(stderr_file, "w", encoding="utf-8") as err:
        km = KernelManager(kernel_name="bias-init-tslab")
        km.start_kernel(stderr=err)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            info = kc.kernel_info(reply=True, timeout=30)["content"]
            try:
                history = kc.history(reply=True, timeout=10)["content"]
            except (TimeoutError, queue.Empty):
                history = None
            if code:
                kc.execute_interactive(code, timeout=300, output_hook=lambda msg: outputs.append({"type": msg["msg_type"], "content": msg["content"]}))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=False)
    print(json.dumps({"language_info": info.get("language_info"), "history": history, "outputs": outputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
