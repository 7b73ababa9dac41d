# Sourced (not run) by the kernel launcher (tools/jupyter/kernels/bias-init-tslab/launch.sh) and by
# `make run`: filters the lines TensorFlow 2.21 logs through absl before absl::InitializeLog() is
# called, which go straight to file descriptor 2 whatever TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel or
# ABSL_MIN_LOG_LEVEL say (measured): "WARNING: All log messages before absl::InitializeLog() ..."
# and "I0000 ... port.cc:153] oneDNN custom operations are on ...", at every start of the native
# engine. Standard error goes through a filter that drops absl INFO lines, and WARNING lines too at
# TF_CPP_MIN_LOG_LEVEL 2 or more (what that level means); errors and everything else pass, line
# by line. The filter ignores SIGINT, which Ctrl-C (or Jupyter's interrupt) sends to the process
# group: it ends when the process it filters closes standard error. TF_CPP_MIN_LOG_LEVEL=0 turns
# it off.
#   source tools/native/quiet-tf-log.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
__bias_absl_levels="I"
[[ "$TF_CPP_MIN_LOG_LEVEL" =~ ^[2-9]$ ]] && __bias_absl_levels="IW"
if [[ "$TF_CPP_MIN_LOG_LEVEL" =~ ^[1-9]$ ]]; then
  exec 2> >(trap '' INT; exec grep --line-buffered -v -E \
    "^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\$|^[$__bias_absl_levels][0-9]{4} [0-9:.]+ +[0-9]+ [^ ]+:[0-9]+\] " >&2)
fi
unset __bias_absl_levels
