# compile_kernels SRC_DIR TF_INCLUDE NODE_INCLUDE LIB_DIR OUT: this project's kernels (SRC_DIR/*.cc)
# as two Node addons compiled at once, OUT.node (-mavx2 -mfma) and OUT_avx512.node (with -mavx512f
# as well; simd.h), linked against LIB_DIR's libtensorflow_framework.so.2 with the run path
# $ORIGIN/../deps/lib. The flags are TensorFlow's custom-op flags for the 2.21 wheel (its
# tf.sysconfig.get_compile_flags(): C++17, the C++11 ABI, 64-byte Eigen alignment). Sourced by
# build.sh (the engine's kernels) and build_baseline_ops.sh (a git revision's, for bench/kernels_ab.ts),
# so both are built alike.
compile_kernels() {
  local src=$1 tf_include=$2 node_include=$3 lib=$4 out=$5 wide
  _compile_kernels_one() {
    g++ -std=c++17 -O3 "$@" -fPIC -shared -w -D_GLIBCXX_USE_CXX11_ABI=1 -DEIGEN_MAX_ALIGN_BYTES=64 \
      -I"$tf_include" -I"$node_include" "$src"/*.cc \
      -L"$lib" -l:libtensorflow_framework.so.2 -Wl,-rpath,'$ORIGIN/../deps/lib'
  }
  _compile_kernels_one -mavx2 -mfma -mavx512f -o "${out}_avx512.node" & wide=$!
  _compile_kernels_one -mavx2 -mfma -o "$out.node"
  wait "$wide"
}
