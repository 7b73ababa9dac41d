"""Pull the pieces the TF.js native binding needs out of TensorFlow / NVIDIA wheels.

Used by tools/native/build.sh. Python's zipfile is used rather than `unzip`
because it is always there (pip needs Python anyway) and lets us rename paths
while extracting, so nothing is unpacked twice.

Subcommands:
  tf-lib WHEEL DEPS_DIR      tensorflow/include/* -> DEPS_DIR/include/,
                             tensorflow/libtensorflow_{cc,framework}.so.2 -> DEPS_DIR/lib/
  headers WHEEL DEST         tensorflow/include/* -> DEST/ (what tf-lib unpacks as DEPS_DIR/include;
                             build_baseline_ops.sh compiles against them from the cached wheel)
  cuda-reqs WHEEL            print the requirement specs of the wheel's `and-cuda` extra, one a line
  cuda-pins WHEEL PINS       print `name==version` for each package of that extra: the version
                             pinned in PINS (checked against the extra's range), else the extra's
                             lower bound; what was chosen and why goes to stderr
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


def headers(zf: zipfile.ZipFile, dest: str) -> int:
    """Unpack tensorflow/include/* into dest; returns how many files."""
    count = 0
    for info in zf.infolist():
        if info.filename.startswith(TF_INCLUDE) and not info.filename.endswith("/"):
            extract_member(zf, info, os.path.join(dest, info.filename[len(TF_INCLUDE):]))
            count += 1
    if not os.path.exists(os.path.join(dest, "tensorflow", "c", "eager", "c_api.h")):
        fail(f"{zf.filename}: no tensorflow/include/tensorflow/c/eager/c_api.h; the binding needs the eager C API headers")
    return count


def tf_lib(wheel: str, deps: str) -> None:
    zf = open_wheel(wheel)
    names = set(zf.namelist())
    missing = [n for n in TF_LIBS if n not in names]
    if missing:
        fail(f"{wheel}: lacks {', '.join(missing)}; is this a TensorFlow >= 2.x Linux wheel?")
    n_headers = headers(zf, os.path.join(deps, "include"))
    for name in TF_LIBS:
        extract_member(zf, zf.getinfo(name), os.path.join(deps, "lib", os.path.basename(name)))
    print(f"extracted {n_headers} headers and {len(TF_LIBS)} libraries into {deps}")


def and_cuda_specs(wheel: str) -> list:
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
    return specs


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str) -> dict:
    pins = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            if not sep or not version.strip():
                fail(f"{path}: '{line}' is not name==version")
            pins[canonical(name.strip())] = version.strip()
    return pins


def cuda_pins(wheel: str, pins_file: str) -> None:
    # pip vendors `packaging`; every Python that can run `pip download` has it.
    try:
        from packaging.requirements import Requirement  # type: ignore
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement  # type: ignore
    pins = read_pins(pins_file)
    out = []
    for spec in and_cuda_specs(wheel):
        req = Requirement(spec)
        name = canonical(req.name)
        if name in pins:
            version = pins.pop(name)
            if not req.specifier.contains(version, prereleases=True):
                fail(f"{pins_file}: {name}=={version} is outside the wheel's requirement '{spec}'; update the pin")
            sys.stderr.write(f"  {name}=={version} (pinned; the wheel asks for '{spec}')\n")
        else:
            lower = [s.version for s in req.specifier if s.operator in (">=", "==")]
            if not lower:
                fail(f"{wheel}: '{spec}' has no lower bound and {pins_file} does not pin {name}; add a pin")
            version = lower[0]
            sys.stderr.write(f"  {name}=={version} (not pinned: the wheel's lower bound in '{spec}')\n")
        out.append(f"{name}=={version}")
    for name in pins:
        sys.stderr.write(f"  {name}: pinned in {pins_file} but not asked for by the wheel; ignored\n")
    print("\n".join(out))


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
    elif len(argv) == 3 and argv[0] == "headers":
        print(f"extracted {headers(open_wheel(argv[1]), argv[2])} headers into {argv[2]}")
    elif len(argv) == 2 and argv[0] == "cuda-reqs":
        print("\n".join(and_cuda_specs(argv[1])))
    elif len(argv) == 3 and argv[0] == "cuda-pins":
        cuda_pins(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "nvidia-libs":
        nvidia_libs(argv[1], argv[2])
    else:
        fail("usage: wheel_tool.py tf-lib WHEEL DEPS_DIR | headers WHEEL DEST | cuda-reqs WHEEL | cuda-pins WHEEL PINS | nvidia-libs WHEEL DEST")


if __name__ == "__main__":
    main(sys.argv[1:])
