package jobs

import (
	"math"
	"strconv"
	"testing"
)

// seedOf is the seed of the task at grid index i of j from its identity.
func seedOf(j *Job, i int) uint64 {
	t := j.TaskAt(i)
	return TaskSeed(j.Job.Seed, KeyID(j.PointKey(t.Values), t.Replicate))
}

func TestCommand(t *testing.T) {
	j := mustParse(t, `[job]
ranks = 2
seed = 5
[task]
command = "sim --L {L} --T {T} --m {m} --ok {ok} --seed {seed} --rep {replicate} --i {index} awk '{{print $1}}'"
[sweep]
L = [8]
T = [0.1, 1e-7, 2.5e20, 0.30000000000000004]
m = ["plain-name_1.x", "two words", "it's"]
ok = [true]
replicates = 2
`)
	tests := []struct {
		index int
		want  string
	}{
		{0, "sim --L 8 --T 0.1 --m plain-name_1.x --ok true --seed " + strconv.FormatUint(seedOf(j, 0), 10) + " --rep 0 --i 0 awk '{print $1}'"},
		{3, "sim --L 8 --T 0.1 --m 'two words' --ok true --seed " + strconv.FormatUint(seedOf(j, 3), 10) + " --rep 1 --i 3 awk '{print $1}'"},
		{4, "sim --L 8 --T 0.1 --m 'it'\\''s' --ok true --seed " + strconv.FormatUint(seedOf(j, 4), 10) + " --rep 0 --i 4 awk '{print $1}'"},
		{6, "sim --L 8 --T 1e-07 --m plain-name_1.x --ok true --seed " + strconv.FormatUint(seedOf(j, 6), 10) + " --rep 0 --i 6 awk '{print $1}'"},
		{12, "sim --L 8 --T 2.5e+20 --m plain-name_1.x --ok true --seed " + strconv.FormatUint(seedOf(j, 12), 10) + " --rep 0 --i 12 awk '{print $1}'"},
		{18, "sim --L 8 --T 0.30000000000000004 --m plain-name_1.x --ok true --seed " + strconv.FormatUint(seedOf(j, 18), 10) + " --rep 0 --i 18 awk '{print $1}'"},
	}
	for _, tc := range tests {
		got, err := j.Command(j.TaskAt(tc.index))
		if err != nil || got != tc.want {
			t.Errorf("task %d:\n got  %q, %v\n want %q", tc.index, got, err, tc.want)
		}
	}
}

// TestFloatRoundTrip checks that a float written into a command reads back
// as exactly the same float64.
func TestFloatRoundTrip(t *testing.T) {
	for _, f := range []float64{0.1, 1.0 / 3, math.Pi, 2.269185314213022, 1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Copysign(0, -1), 123456789.123456789} {
		s := Value{Float: f}.Format(KindFloat)
		back, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(f) {
			t.Errorf("%v written %q reads back as %v (%v)", f, s, back, err)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"abc":            "abc",
		"a/b=c:d,e+f@g-": "a/b=c:d,e+f@g-",
		"":               "''",
		"a b":            "'a b'",
		"$HOME":          "'$HOME'",
		"it's":           `'it'\''s'`,
		"x;rm -rf /":     "'x;rm -rf /'",
		"ü":              "'ü'",
	}
	for in, want := range tests {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	j := mustParse(t, "[job]\nranks = 2\nprogram = [\"p\"]\n[task]\nfunction = \"f\"\n")
	if _, err := j.Command(j.TaskAt(0)); err == nil {
		t.Error("Command on a function task: no error")
	}
}
