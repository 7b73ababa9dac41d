#!/usr/bin/env python3
"""Patches tfjs-node's binding source before it is compiled (tools/native/build.sh step 4).

One patch: string-list attributes. tfjs-node's AssignOpAttr sets TF_ATTR_STRING values as one
string only, so ops whose attribute is a list of strings (the fused_ops of _FusedMatMul,
_FusedConv2D) cannot be run through the binding. With the patch, a JS array of strings sets a
string list (TFE_OpSetAttrStringList); a plain string works as before.

Usage: patch_binding.py <package dir>. Idempotent; exits 1 naming the file if the source is not
the one this patch was written for (tfjs-node 4.22.0).
"""
import pathlib
import sys

MARK = "// bias-init: string-list attributes"
OLD = """    case TF_ATTR_STRING: {
      // NOTE: String attribute values do not have to be utf8 encoded strings
      // (could be arbitrary byte sequences).
      std::string str_value;"""
NEW = """    case TF_ATTR_STRING: {
      """ + MARK + """
      if (IsArray(env, nstatus, &js_value)) {
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<std::string> values(length);
        std::vector<const void *> pointers(length);
        std::vector<size_t> lengths(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = GetStringParam(env, element, values[i]);
          ENSURE_NAPI_OK(env, nstatus);
          pointers[i] = values[i].data();
          lengths[i] = values[i].size();
        }
        TFE_OpSetAttrStringList(tfe_op, attr_name, pointers.data(),
                                lengths.data(), static_cast<int>(length));
        break;
      }
      // NOTE: String attribute values do not have to be utf8 encoded strings
      // (could be arbitrary byte sequences).
      std::string str_value;"""


def main() -> int:
    path = pathlib.Path(sys.argv[1]) / "binding" / "tfjs_backend.cc"
    source = path.read_text()
    if MARK in source:
        return 0
    if source.count(OLD) != 1:
        print(f"patch_binding.py: {path} does not hold the AssignOpAttr string case this patch expects "
              "(written for tfjs-node 4.22.0); update tools/native/patch_binding.py", file=sys.stderr)
        return 1
    path.write_text(source.replace(OLD, NEW))
    return 0


if __name__ == "__main__":
    sys.exit(main())
