"""Child process for test/notebooks.test.ts: the project's kernel as Jupyter starts it.

    .venv/bin/python test/helpers/kernel_protocol.py [--busy-port] STDERR_FILE [CODE]

Starts the kernelspec bias-init-tslab (found through JUPYTER_PATH, which the caller sets) with
jupyter_client, the library JupyterLab's server and nbclient use, with the kernel's stderr (what
lands in the Jupyter server's log) going to STDERR_FILE. Asks for kernel_info and for history, runs
CODE if given, shuts the kernel down, and prints one JSON line: the kernel_info reply's
language_info, the history reply's content (null when none came within 10 s), CODE's outputs and
how many starts the kernel took (tools/jupyter/kernel_start.py: a kernel that dies before it is
ready, having lost a port to another process, is started again on new ports).
--busy-port makes the first start lose that race for real: its connection file names a shell port
that a listening socket here holds.
"""
from __future__ import annotations

import json
import queue
import socket
import sys
from pathlib import Path

from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "jupyter"))
from kernel_start import until_alive  # noqa: E402


def main() -> int:
    args = sys.argv[1:]
    busy = None
    if args and args[0] == "--busy-port":
        args = args[1:]
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
    stderr_file, code = args[0], (args[1] if len(args) > 1 else "")
    outputs: list[dict] = []
    starts = 0

    def start() -> tuple[KernelManager, object]:
        nonlocal starts
        starts += 1
        lose_race = busy is not None and starts == 1
        km = KernelManager(kernel_name="bias-init-tslab")
        if lose_race:
            km.cache_ports = False  # keep the port set here; the other four are picked free
            km.shell_port = busy.getsockname()[1]
        km.start_kernel(stderr=err)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=30 if lose_race else 120)
        except BaseException:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            raise
        return km, kc

    with open(stderr_file, "w", encoding="utf-8") as err:
        km, kc = until_alive(start, "kernel_protocol.py")
        try:
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
    payload = {"language_info": info.get("language_info"), "history": history, "outputs": outputs, "starts": starts}
    if busy is not None:
        payload["busy_port"] = busy.getsockname()[1]
        busy.close()
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
