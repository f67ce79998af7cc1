package jobs

import "embed"

// Examples holds the example job files (examples/*.toml): hello.toml,
// ising.toml, ising-adaptive.toml, shell-sweep.toml, slurm-hello.toml and pbs-hello.toml. The CLI
// prints them for users to copy; a test loads and validates each.
//
//go:embed examples/*.toml
var Examples embed.FS
