#!/usr/bin/env python3
"""Patches tfjs-node's binding source before it is compiled (tools/native/build.sh step 4).

Two patches to AssignOpAttr, which sets an op's attributes from JS values:
- string lists: it sets TF_ATTR_STRING values as one string only, so ops whose attribute is a list
  of strings (the fused_ops of _FusedMatMul, _MklNativeFusedConv2D) cannot be run through the
  binding. With the patch, a JS array of strings sets a string list (TFE_OpSetAttrStringList).
- type lists: likewise TF_ATTR_TYPE takes one type only; _MklNativeFusedConv2D's kernel reads a
  list of types (TArgs). A JS array of type numbers sets a type list (TFE_OpSetAttrTypeList).
A plain string or type works as before.

Usage: patch_binding.py <package dir>. Idempotent; exits 1 naming the file if the source is not
the one this patch was written for (tfjs-node 4.22.0).
"""
import pathlib
import sys

MARK = "// bias-init: string-list attributes"
TYPE_MARK = "// bias-init: type-list attributes"
TYPE_OLD = """    case TF_ATTR_TYPE: {
      TF_DataType tf_data_type;"""
TYPE_NEW = """    case TF_ATTR_TYPE: {
      """ + TYPE_MARK + """
      if (IsArray(env, nstatus, &js_value)) {
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<TF_DataType> types(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = napi_get_value_int32(env, element,
                                         reinterpret_cast<int32_t *>(&types[i]));
          ENSURE_NAPI_OK(env, nstatus);
        }
        TFE_OpSetAttrTypeList(tfe_op, attr_name, types.data(),
                              static_cast<int>(length));
        break;
      }
      TF_DataType tf_data_type;"""
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


PATCHES = [("string", MARK, OLD, NEW), ("type", TYPE_MARK, TYPE_OLD, TYPE_NEW)]


def main() -> int:
    path = pathlib.Path(sys.argv[1]) / "binding" / "tfjs_backend.cc"
    source = path.read_text()
    for case, mark, old, new in PATCHES:
        if mark in source:
            continue
        if source.count(old) != 1:
            print(f"patch_binding.py: {path} does not hold the AssignOpAttr {case} case this patch expects "
                  "(written for tfjs-node 4.22.0); update tools/native/patch_binding.py", file=sys.stderr)
            return 1
        source = source.replace(old, new)
    path.write_text(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
