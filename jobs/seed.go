package jobs

// The golden ratio constant of SplitMix64: the generator's state advances by
// it at each step.
const splitmixGamma = 0x9e3779b97f4a7c15

// mix64 is SplitMix64's output function (Steele, Lea and Flood, 2014): a
// bijection on uint64 with strong avalanche.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Seed derives the index seed of task index from the job's base seed (the
// formula of result files version 1; sweeps now use TaskSeed):
//
//	key  = mix64(base + γ)                 // base 0 counts as 1
//	seed = mix64(key + (index+1)·γ)        // mod 2^64
//
// where γ = 0x9e3779b97f4a7c15 and mix64 is SplitMix64's finalizer. That is,
// the seeds of a job are the outputs of a SplitMix64 generator whose state
// starts at key. It depends on nothing but base and index (not on rank, rank
// count or completion order), and distinct indexes of one job always get
// distinct seeds, because mix64 is a bijection and γ is odd. The formula is
// fixed: changing it would change every published result, and a test pins
// its values.
func Seed(base uint64, index int) uint64 {
	if base == 0 {
		base = 1
	}
	key := mix64(base + splitmixGamma)
	return mix64(key + (uint64(index)+1)*splitmixGamma)
}

// TaskSeed derives the seed of the task with identity id (see TaskID) from
// the job's base seed:
//
//	key  = mix64(base + γ)                              // base 0 counts as 1
//	seed = mix64(mix64(key ^ id.Hi) + (replicate+1)·γ)  // mod 2^64
//
// where id.Hi is the first 8 bytes (big-endian) of the SHA-256 of the
// task's canonical key (Job.PointKey). It depends on nothing but the base
// seed, the parameter values by name and the replicate: not on positions,
// ranks or timing. Within one point, distinct replicates always get distinct
// seeds (mix64 is a bijection and γ is odd). The formula is fixed: a test
// pins its values.
//
// Result files written before task identities (rankhub.results_version 1)
// used Seed(base, index); they cannot be resumed.
func TaskSeed(base uint64, id TaskID) uint64 {
	if base == 0 {
		base = 1
	}
	key := mix64(base + splitmixGamma)
	return mix64(mix64(key^id.Hi) + (uint64(id.Replicate)+1)*splitmixGamma)
}
