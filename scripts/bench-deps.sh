#!/usr/bin/env bash
# Installs what `make bench` runs beside rankhub: the anchors' ipyparallel,
# mpi4py/Open MPI and numpy from Debian, and gcc for the C anchors.
set -euo pipefail
need=()
/usr/bin/python3 -c 'import ipyparallel, numpy' 2>/dev/null || need+=(python3-ipyparallel python3-numpy)
/usr/bin/python3 -c 'import mpi4py' 2>/dev/null || need+=(python3-mpi4py openmpi-bin libopenmpi-dev)
command -v gcc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
