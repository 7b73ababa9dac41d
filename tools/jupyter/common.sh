# Sourced by tools/jupyter/{lab,report,install-kernel}.sh: the repository root, and `require`.
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"

# require TEST PATH MESSAGE: `test TEST PATH` (-x, -f, -d), or MESSAGE on stderr and exit 1.
require() {
  test "$1" "$2" || { echo "$3" >&2; exit 1; }
}
