// Package multinode holds rankhub's multi-node tier: tests of real jobs on
// the emulated 3-node SLURM of scripts/slurm-multi.sh (started with
// `scripts/slurm-local.sh up --nodes 3`), through the rankhub binary.
//
// The tests skip with a loud message when that cluster is not up, and fail
// instead with RANKHUB_REQUIRE_MULTINODE=1 (CI sets it). They use the
// cluster through SLURM_CONF=/etc/slurm-multi/slurm.conf; the one-node
// cluster of slurm-local.sh keeps running beside it. The node-crash test
// kills node n3 and starts it again.
//
// The package has no code of its own: only tests and the test programs in
// testdata: coll, and exact (every collective and the views' data movement
// checked element by element, float64 reductions bit for bit against the
// documented order, compared between layouts; a 2.1 GiB broadcast).
package multinode
