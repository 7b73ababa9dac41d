"""Pull the pieces the TF.js native binding needs out of TensorFlow / NVIDIA wheels.

Used by tools/native/build.sh. Python's zipfile is used rather than `unzip`
because it is always there (pip needs Python anyway) and lets us rename paths
while extracting, so nothing is unpacked twice.

Subcommands:
  tf-lib WHEEL DEPS_DIR      tensorflow/include/* -> DEPS_DIR/include/,
                             tensorflow/libtensorflow_{cc,framework}.so.2 -> DEPS_DIR/lib/
  cuda-reqs WHEEL            print the requirement specs of the wheel's `and-cuda` extra, one a line
  nvidia-libs WHEEL DEST     nvidia/<pkg>/{lib,bin}/* -> DEST/<pkg>/{lib,bin}/*
"""

import os
import re
import shutil
import sys
import zipfile

TF_LIBS = ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2")
TF_INCLUDE = "tensorflow/include/"


def fail(msg: str) -> None:
    sys.stderr.write(f"wheel_tool.py: {msg}\n")
    sys.exit(1)


def open_wheel(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        fail(f"{path}: not a readable wheel ({e}); delete it so it is downloaded again")
        raise  # unreachable, keeps type checkers quiet


def extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with zf.open(info) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    # Keep the permission bits the wheel recorded (executables such as ptxas need them).
    mode = (info.external_attr >> 16) & 0o777
    os.chmod(dest + ".part", mode or 0o644)
    os.replace(dest + ".part", dest)


def tf_lib(wheel: str, deps: str) -> None:
    zf = open_wheel(wheel)
    names = set(zf.namelist())
    missing = [n for n in TF_LIBS if n not in names]
    if missing:
        fail(f"{wheel}: lacks {', '.join(missing)}; is this a TensorFlow >= 2.x Linux wheel?")
    n_headers = 0
    for info in zf.infolist():
        name = info.filename
        if name.startswith(TF_INCLUDE) and not name.endswith("/"):
            extract_member(zf, info, os.path.join(deps, "include", name[len(TF_INCLUDE):]))
            n_headers += 1
        elif name in TF_LIBS:
            extract_member(zf, info, os.path.join(deps, "lib", os.path.basename(name)))
    if not os.path.exists(os.path.join(deps, "include", "tensorflow", "c", "eager", "c_api.h")):
        fail(f"{wheel}: no tensorflow/include/tensorflow/c/eager/c_api.h; the binding needs the eager C API headers")
    print(f"extracted {n_headers} headers and {len(TF_LIBS)} libraries into {deps}")


def cuda_reqs(wheel: str) -> None:
    zf = open_wheel(wheel)
    metas = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
    if not metas:
        fail(f"{wheel}: no .dist-info/METADATA")
    text = zf.read(metas[0]).decode("utf-8")
    specs = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req, _, marker = line[len("Requires-Dist:"):].partition(";")
        if re.search(r"""extra\s*==\s*["']and-cuda["']""", marker):
            specs.append(req.strip().replace(" ", ""))
    if not specs:
        fail(f"{wheel}: declares no `and-cuda` extra; cannot tell which CUDA wheels it needs")
    print("\n".join(specs))


def nvidia_libs(wheel: str, dest: str) -> None:
    zf = open_wheel(wheel)
    count = 0
    for info in zf.infolist():
        parts = info.filename.split("/")
        # nvidia/<pkg>/lib/... and nvidia/<pkg>/bin/... (ptxas); headers are not needed at run time.
        if len(parts) >= 4 and parts[0] == "nvidia" and parts[2] in ("lib", "bin") and not info.filename.endswith("/"):
            extract_member(zf, info, os.path.join(dest, *parts[1:]))
            count += 1
    print(f"{os.path.basename(wheel)}: {count} files")


def main(argv: list) -> None:
    if len(argv) == 3 and argv[0] == "tf-lib":
        tf_lib(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "cuda-reqs":
        cuda_reqs(argv[1])
    elif len(argv) == 3 and argv[0] == "nvidia-libs":
        nvidia_libs(argv[1], argv[2])
    else:
        fail("usage: wheel_tool.py tf-lib WHEEL DEPS_DIR | cuda-reqs WHEEL | nvidia-libs WHEEL DEST")


if __name__ == "__main__":
    main(sys.argv[1:])
