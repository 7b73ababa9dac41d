"""A real torchvision B1 checkpoint and a map of its structure, for the .pth reader's fuzz test.

Usage: .venv/bin/python tools/pth_fuzz_reference.py OUT_DIR

Writes into OUT_DIR (never commit it: the .pth is 31 MB):
  b1.pth         torch.save(efficientnet_b1().state_dict()), random init with a fixed torch seed
  layout.json    where everything is, found with Python's own zip and pickle tools (struct over
                 the zip records, pickletools.genops over data.pkl), so that test/pth_fuzz.test.ts
                 mutates the fields it means to without trusting the reader it tests:
    size                   file size in bytes
    end, end64, locator    offsets of the end record, zip64 end record, zip64 locator (or null)
    entries[]              name, local (local header offset), central (central header offset),
                           data (offset of the data), size, extra64 (offset of the zip64 extra
                           field's values in the central header, or null), slack (bytes between
                           the end of the data and the next record, for entries that may grow)
    pickle.entry           the data.pkl entry's name; pickle.ops[]: [offset in data.pkl, opcode
                           byte, argument length] of every opcode
    pickle.tensors[]       per state_dict tensor: op indices of its storage size (numel), storage
                           offset, size and stride ints (into pickle.ops)
    tensors                number of state_dict entries
"""

import json
import os
import pickletools
import struct
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_compat import import_torchvision  # noqa: E402

SEED = 20240611
INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}
TUPLE_OPS = {"TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"}


def zip_layout(path):
    data = open(path, "rb").read()
    end = data.rfind(b"PK\x05\x06")
    locator = data.rfind(b"PK\x06\x07", 0, end)
    end64 = data.rfind(b"PK\x06\x06", 0, end)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        central = zf.start_dir
    records = sorted([i.header_offset for i in infos] + [central])
    entries = []
    for info in infos:
        assert struct.unpack_from("<I", data, central)[0] == 0x02014B50
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, central + 28)
        extra64 = None
        x = central + 46 + name_len
        while x + 4 <= central + 46 + name_len + extra_len:
            ident, length = struct.unpack_from("<HH", data, x)
            if ident == 1:
                extra64 = x + 4
            x += 4 + length
        local = info.header_offset
        local_name, local_extra = struct.unpack_from("<HH", data, local + 26)
        start = local + 30 + local_name + local_extra
        following = min([r for r in records if r > local])
        entries.append({
            "name": info.filename, "local": local, "central": central, "data": start,
            "size": info.file_size, "method": info.compress_type, "extra64": extra64,
            "slack": following - (start + info.compress_size),
        })
        central += 46 + name_len + extra_len + comment_len
    return data, {
        "size": len(data), "end": end, "end64": end64 if end64 >= 0 else None,
        "locator": locator if locator >= 0 else None, "entries": entries,
    }


def pickle_layout(pkl):
    ops = [(op, pos) for op, _arg, pos in pickletools.genops(pkl)]
    table = []
    for i, (op, pos) in enumerate(ops):
        end = ops[i + 1][1] if i + 1 < len(ops) else len(pkl)
        table.append([pos, op.code.encode("latin1")[0], end - pos - 1])
    names = [op.name for op, _pos in ops]
    tensors = []
    for i, name in enumerate(names):
        if name != "BINPERSID":
            continue
        j = i - 1  # the storage's element count: the last int of the persistent id tuple
        while names[j] not in INT_OPS:
            j -= 1
        numel = j
        k = i + 1
        offset = k
        assert names[offset] in INT_OPS, names[offset]
        groups = []
        k += 1
        for _ in range(2):  # size, then stride
            ints = []
            while names[k] not in TUPLE_OPS:
                if names[k] in INT_OPS:
                    ints.append(k)
                k += 1
            groups.append(ints)
            k += 1
        tensors.append({"numel": numel, "offset": offset, "size": groups[0], "stride": groups[1]})
    return {"ops": table, "tensors": tensors}


def main(out_dir):
    tv = import_torchvision()
    torch.manual_seed(SEED)
    state = tv.models.efficientnet_b1().state_dict()
    path = os.path.join(out_dir, "b1.pth")
    torch.save(state, path)
    data, layout = zip_layout(path)
    pkl_entry = next(e for e in layout["entries"] if e["name"].endswith("/data.pkl"))
    pkl = data[pkl_entry["data"]:pkl_entry["data"] + pkl_entry["size"]]
    layout["pickle"] = {"entry": pkl_entry["name"], **pickle_layout(pkl)}
    layout["file"] = "b1.pth"
    layout["tensors"] = len(state)
    assert len(layout["pickle"]["tensors"]) == len(state)
    with open(os.path.join(out_dir, "layout.json"), "w") as f:
        json.dump(layout, f)


if __name__ == "__main__":
    main(sys.argv[1])
