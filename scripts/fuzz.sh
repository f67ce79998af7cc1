#!/bin/bash
# fuzz.sh: run every fuzz target (func Fuzz* in *_test.go) for FUZZTIME each
# (default 30s; FUZZ=regexp picks targets). Any crasher fails the run: a new
# one is written to the target's testdata/fuzz/NAME/ (keep it there with the
# fix), and one already there fails at once.
#
# Go 1.26's fuzz coordinator can report "context deadline exceeded" at the end
# of a duration -fuzztime with no failing input (golang/go#75804, fixed in Go
# 1.27): a worker's shutdown error escapes the check meant to treat the
# deadline as a normal stop. Such a run, and only such a run (that message, no
# new file in testdata/fuzz/NAME/), is run once more; it fails if that fails.
set -uo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
fail=0
corpus() { ls "$1" 2>/dev/null | sort; }
while IFS= read -r hit; do
	dir=${hit%%:*}
	dir=${dir%/*}
	name=${hit##*:}
	if [ -n "${FUZZ:-}" ] && ! [[ $name =~ ${FUZZ} ]]; then continue; fi
	for try in 1 2; do
		echo "== fuzz $name ($dir, $FUZZTIME)"
		before=$(corpus "$dir/testdata/fuzz/$name")
		out=$(mktemp)
		$GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$dir" 2>&1 | tee "$out"
		rc=${PIPESTATUS[0]}
		after=$(corpus "$dir/testdata/fuzz/$name")
		if [ "$rc" -eq 0 ]; then
			rm -f "$out"
			break
		fi
		if [ "$try" -eq 1 ] && [ "$before" = "$after" ] &&
			grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written' "$out"; then
			echo "fuzz $name: \"context deadline exceeded\" at the fuzztime boundary with no failing input (Go's coordinator race, golang/go#75804): running it once more"
			rm -f "$out"
			continue
		fi
		rm -f "$out"
		echo "FAIL: fuzz $name in $dir: the failing input is in $dir/testdata/fuzz/$name/ (keep it there with the fix)"
		fail=1
		break
	done
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's/:func /:/' | sort)
exit $fail
