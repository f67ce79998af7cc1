package jobs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestTaskSeedGolden pins TaskSeed and the canonical keys: these values
// follow from the documented formula (cross-checked with an independent
// Python implementation: hashlib.sha256 and SplitMix64's mix). If this test fails, every published
// seed of every sweep has changed.
func TestTaskSeedGolden(t *testing.T) {
	j := mustParse(t, sweepHead+"T = [2.5]\nL = [16]\nname = [\"a b\"]\nok = [true]\nreplicates = 3\n")
	task := j.PointTask(0, 2)
	if k := j.PointKey(task.Values); k != `L=16;T=2.5;name="a b";ok=true;` {
		t.Fatalf("key %q", k)
	}
	tests := []struct {
		base uint64
		key  string
		rep  int
		want uint64
	}{
		{1, "", 0, 0x13da9cf477b71080},
		{1, "", 1, 0x982cd1052444b153},
		{0, "", 0, 0x13da9cf477b71080}, // base 0 means 1
		{2024, "L=8;T=1.5;", 0, 0x16e39d03c843f767},
		{2024, "L=8;T=1.5;", 7, 0x8fac711adb9cfc8c},
		{99, `L=16;T=2.5;name="a b";ok=true;`, 2, 0x8330a2095f12ad18},
	}
	for _, tc := range tests {
		if got := TaskSeed(tc.base, KeyID(tc.key, tc.rep)); got != tc.want {
			t.Errorf("TaskSeed(%d, %q, %d) = %#x, want %#x", tc.base, tc.key, tc.rep, got, tc.want)
		}
	}
}

func TestValueText(t *testing.T) {
	for _, tc := range []struct {
		k    Kind
		v    Value
		want string
	}{
		{KindInt, Value{Int: -7}, "-7"},
		{KindFloat, Value{Float: 16}, "16"},
		{KindFloat, Value{Float: 0.1}, "0.1"},
		{KindFloat, Value{Float: 1e300}, "1e+300"},
		{KindFloat, Value{Float: 1 << 60}, "1.152921504606847e+18"},
		{KindString, Value{Str: "a\"b"}, `"a\"b"`},
		{KindBool, Value{Bool: false}, "false"},
	} {
		if got := ValueText(tc.k, tc.v); got != tc.want {
			t.Errorf("ValueText(%v, %+v) = %q, want %q", tc.k, tc.v, got, tc.want)
		}
	}
}

// randomSweep writes a random [sweep] body as (key, value) lines.
type sweepLine struct{ name, value string }

func randomSweep(r *rand.Rand) ([]sweepLine, int) {
	var lines []sweepLine
	names := []string{"L", "T", "beta", "mode", "flag", "n"}
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, n := range names[:1+r.IntN(4)] {
		var v string
		switch r.IntN(5) {
		case 0:
			v = fmt.Sprintf("[%d, %d]", r.IntN(10), 10+r.IntN(10))
		case 1:
			v = fmt.Sprintf("[%g, %g, %g]", float64(r.IntN(100))/10, 10.25, 11.5+float64(r.IntN(5)))
		case 2:
			v = `["a", "b c"]`
		case 3:
			v = fmt.Sprintf("{ start = %g, stop = %g, step = 0.1 }", 1.0, 1.0+0.1*float64(1+r.IntN(4)))
		default:
			v = "[true]"
		}
		lines = append(lines, sweepLine{n, v})
	}
	return lines, 1 + r.IntN(3)
}

// extend grows a random sweep in one of the ways that must keep every task.
func extend(r *rand.Rand, lines []sweepLine, reps int) ([]sweepLine, int, string) {
	out := append([]sweepLine(nil), lines...)
	i := r.IntN(len(out))
	switch r.IntN(5) {
	case 0:
		r.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
		return out, reps, "reorder"
	case 1:
		return out, reps + 1 + r.IntN(3), "replicates"
	case 2:
		v := out[i].value
		switch {
		case strings.Contains(v, "values"):
			out[i].value = "{ values = [3, 1, 2, 4], default = 1 }"
		case strings.HasPrefix(v, "{"):
			// A step range grows by moving stop: earlier values stay.
			var start, stop, step float64
			fmt.Sscanf(v, "{ start = %g, stop = %g, step = %g }", &start, &stop, &step)
			out[i].value = fmt.Sprintf("{ start = %g, stop = %g, step = 0.1 }", start, stop+0.3)
		case strings.Contains(v, `"new"`):
			out[i].value = strings.Replace(v, "[", `["newer", `, 1)
		case strings.Contains(v, `"`):
			out[i].value = strings.Replace(v, "[", `["new", `, 1)
		case strings.Contains(v, "true"):
			out[i].value = "[false, true]"
		case strings.Contains(v, "-1"):
			out[i].value = strings.Replace(v, "[", "[-2, ", 1)
		case strings.Contains(v, "2.75"):
			out[i].value = strings.Replace(v, "[", "[-1, ", 1)
		default:
			out[i].value = strings.Replace(v, "[", "[2.75, ", 1) // may turn integers into floats
		}
		return out, reps, "values of " + out[i].name
	case 3:
		for _, l := range out {
			if l.name == "added" {
				return out, reps, "nothing"
			}
		}
		at := r.IntN(len(out) + 1)
		nl := sweepLine{"added", "{ values = [3, 1, 2], default = 1 }"}
		out = append(out[:at], append([]sweepLine{nl}, out[at:]...)...)
		return out, reps, "new parameter with a default"
	default:
		return out, reps, "nothing"
	}
}

func sweepText(lines []sweepLine, reps int) string {
	var b strings.Builder
	b.WriteString("[job]\nranks = 2\nseed = 77\nprogram = [\"./sim\"]\n[task]\nfunction = \"f\"\n[sweep]\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "%s = %s\n", l.name, l.value)
	}
	fmt.Fprintf(&b, "replicates = %d\n", reps)
	return b.String()
}

// TestIdentityPropertyUnderGrowth: over random sweeps and random chains of
// extensions, every task of every earlier version keeps its key and its
// seed bit for bit in the grown one.
func TestIdentityPropertyUnderGrowth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		lines, reps := randomSweep(r)
		oldText := sweepText(lines, reps)
		old := mustParse(t, oldText)
		var how []string
		for step := 0; step < 3; step++ {
			var what string
			lines, reps, what = extend(r, lines, reps)
			how = append(how, what)
		}
		grown := mustParse(t, sweepText(lines, reps))
		seeds := map[TaskID]uint64{}
		for i := range grown.NumTasks() {
			task := grown.TaskAt(i)
			id := grown.ID(task)
			if _, dup := seeds[id]; dup {
				t.Fatalf("trial %d: two tasks of the grown sweep share identity %+v", trial, id)
			}
			seeds[id] = task.Seed
		}
		for i := range old.NumTasks() {
			task := old.TaskAt(i)
			id := old.ID(task)
			s, ok := seeds[id]
			switch {
			case !ok:
				t.Fatalf("trial %d (%s): task %q r%d of\n%s\nis not in\n%s", trial, strings.Join(how, ", "),
					old.PointKey(task.Values), task.Replicate, oldText, sweepText(lines, reps))
			case s != task.Seed:
				t.Fatalf("trial %d (%s): task %q r%d seed %#x became %#x", trial, strings.Join(how, ", "),
					old.PointKey(task.Values), task.Replicate, task.Seed, s)
			}
		}
	}
}

func TestDefaultErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`x = { values = [1, 2], default = "a" }`, "t.toml:7:24: sweep.x.default: want a value of the parameter's kind (int), got a string"},
		{`x = { values = [1, 2], default = 1, extra = 3 }`, "sweep.x.extra"},
		{`x = { values = 3 }`, "sweep.x.values: want a list of values"},
		{`x = { start = 1, stop = 2, num = 3, default = true }`, "sweep.x.default"},
	} {
		_, err := Parse("t.toml", []byte(sweepHead+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.want)
		}
	}
	j := mustParse(t, sweepHead+"x = { values = [1, 2], default = 5 }\n")
	if len(j.Warnings) == 0 || !strings.Contains(j.Warnings[0].String(), "not among the values") {
		t.Errorf("warnings %v", j.Warnings)
	}
}

func TestAdaptiveDecode(t *testing.T) {
	head := "[job]\nranks = 2\nprogram = [\"./sim\"]\n[task]\nfunction = \"f\"\noutputs = [\"energy\", \"m\"]\n[sweep]\nx = [1, 2]\n"
	j := mustParse(t, head+`replicates = { min = 8, max = 100, sem = { energy = 1e-3, m = "2%" } }`+"\n")
	a := j.Sweep.Adaptive
	if a == nil || a.Min != 8 || a.Max != 100 || len(a.SEM) != 2 || a.SEM[0] != (SEMTarget{"energy", 1e-3, false}) ||
		a.SEM[1] != (SEMTarget{"m", 0.02, true}) || j.Sweep.Replicates != 100 {
		t.Fatalf("adaptive %+v, replicates %d", a, j.Sweep.Replicates)
	}
	if j := mustParse(t, head+`replicates = { sem = { energy = 1 } }`+"\n"); j.Sweep.Adaptive.Min != 4 || j.Sweep.Replicates != OpenReplicates {
		t.Fatalf("open-ended: %+v", j.Sweep.Adaptive)
	}
	for _, tc := range []struct{ body, want string }{
		{`replicates = { min = 9, max = 8, sem = { energy = 1 } }`, "t.toml:9:16: sweep.replicates.min: min = 9 is more than max = 8"},
		{`replicates = { sem = { energy = 0 } }`, "sweep.replicates.sem.energy: the SEM target must be a positive finite number, got 0"},
		{`replicates = { sem = { energy = -1 } }`, "sweep.replicates.sem.energy: the SEM target must be a positive"},
		{`replicates = { sem = { energy = "x%" } }`, `sweep.replicates.sem.energy: want a number (absolute SEM) or a percentage`},
		{`replicates = { sem = { enrgy = 1 } }`, `t.toml:9:24: sweep.replicates.sem.enrgy: "enrgy" is not an output of the task (outputs: energy, m)`},
		{`replicates = { min = 1, sem = { energy = 1 } }`, "sweep.replicates.min: a standard error needs at least 2 replicates"},
		{`replicates = { max = 8 }`, "sweep.replicates: an adaptive replicates table needs sem"},
		{"replicates = { sem = { energy = 1 } }\norder = \"grid\"", "sweep.order: adaptive replicates run replicate by replicate"},
	} {
		_, err := Parse("t.toml", []byte(head+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n error %v\n want %q", tc.body, err, tc.want)
		}
	}
}

func TestUnusedSweepKeyWarns(t *testing.T) {
	j := mustParse(t, "[job]\nranks = 2\n[task]\ncommand = \"sim {L}\"\n[sweep]\nL = [8]\nreplicats = 4\n")
	var ws []string
	for _, w := range j.Warnings {
		ws = append(ws, w.String())
	}
	want := "t.toml:7:1: sweep.replicats: no placeholder {replicats} in task.command uses this parameter"
	if len(ws) != 1 || !strings.HasPrefix(ws[0], want) {
		t.Fatalf("warnings %q, want %q", ws, want)
	}
}
