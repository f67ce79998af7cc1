package jobs

import "testing"

func TestScanKeys(t *testing.T) {
	src := `# comment with [fake] and x = 1
title = "a # not a comment"   # trailing
[job]
ranks = 4
"quoted.key" = 1
'lit' = 2
a . b = 3
multi = """
fake = 1
[fake]
\"""still"""
after = 5
lit2 = '''x
[nope]
'''
arr = [
  1, # comment ] =
  { k = 1 },
  [2, 3],
]
esc = "\u0041"
[[runs]]
n = 1
[sweep.T]
start = 1
[sweep]
U = { start = 1, stop = 2, num = 3 }
"a\u0062" = 1
`
	want := map[string]Pos{
		"title":            {2, 1},
		"job":              {3, 2},
		"job.ranks":        {4, 1},
		`job."quoted.key"`: {5, 1},
		"job.lit":          {6, 1},
		"job.a":            {7, 1},
		"job.a.b":          {7, 5},
		"job.multi":        {8, 1},
		"job.after":        {12, 1},
		"job.lit2":         {13, 1},
		"job.arr":          {16, 1},
		"job.arr.k":        {18, 5},
		"job.esc":          {21, 1},
		"runs":             {22, 3},
		"runs.n":           {23, 1},
		"sweep":            {24, 2},
		"sweep.T":          {24, 8},
		"sweep.T.start":    {25, 1},
		"sweep.U":          {27, 1},
		"sweep.U.start":    {27, 7},
		"sweep.U.stop":     {27, 18},
		"sweep.U.num":      {27, 28},
		"sweep.ab":         {28, 1},
	}
	got := scanKeys(src)
	for k, p := range want {
		if got[k] != p {
			t.Errorf("%s at %v, want %v", k, got[k], p)
		}
	}
	for _, k := range []string{"job.fake", "fake", "nope", "job.nope", "k"} {
		if p, ok := got[k]; ok {
			t.Errorf("%s recorded at %v: it is inside a string or comment", k, p)
		}
	}
}

// TestScanKeysNeverStalls feeds the scanner text that is not valid TOML.
func TestScanKeysNeverStalls(t *testing.T) {
	for _, src := range []string{"", "[", "[[", "a = {", "a = [", `a = "`, `a = """`, "a = '''", `"\u12`, "= = =", "\x00\xff", "a.", "[a.]\n="} {
		scanKeys(src)
	}
}
