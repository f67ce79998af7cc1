#!/bin/bash
# run.sh [N...]: rankhub run -n N of benchmarks/oversub for each N (default
# 9 65 257 1025) on this machine, printing start time and the apply-all
# round trip. Ranks outnumber the cores: this is the oversubscription test
# of issue 13 (the run must complete, degrading, never collapsing).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bin
go build -o bin/rankhub ./cmd/rankhub
go build -o bin/oversub ./benchmarks/oversub
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in "${@:-9 65 257 1025}"; do
	for k in $n; do
		t0=$(date +%s%N)
		if out=$(cd "$work" && OVERSUB_T0=$t0 timeout 600 "$OLDPWD/bin/rankhub" run -n "$k" -- "$OLDPWD/bin/oversub" 2>"$work/err-$k"); then
			t1=$(date +%s%N)
			printf '%s total=%.1fs\n' "$(grep '^\[rank 0\] OVERSUB\|^OVERSUB' <<<"$out" | sed 's/^\[rank 0\] //')" "$(((t1 - t0) / 1000000))e-3"
		else
			echo "OVERSUB ranks=$k FAILED (exit $?); last lines of stderr:"
			tail -n 5 "$work/err-$k"
		fi
	done
done
