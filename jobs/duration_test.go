package jobs

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"2h", 2 * time.Hour},
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"45s", 45 * time.Second},
		{"1.5h", 90 * time.Minute},
		{"2d", 48 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1:30:00", 90 * time.Minute},
		{"30:00", 30 * time.Minute},
		{"90:00", 90 * time.Minute},
		{"100:00:00", 100 * time.Hour},
		{"1-00:00:00", 24 * time.Hour},
		{"2-12", 60 * time.Hour},
		{"2-12:30", 60*time.Hour + 30*time.Minute},
		{"0-00:00:05", 5 * time.Second},
		{" 10m ", 10 * time.Minute},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if err != nil || got.Duration != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.Duration, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-1h", "90", "abc", "1:60:00", "1:00:60", "1-24:00", "1-", "x-01", "1:2:3:4", "1::00", "2h-3", "1.5d", "99999999999999999999h", "999999999999-00"} {
		if d, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, d.Duration)
		}
	}
}

func TestDurationTOML(t *testing.T) {
	var d Duration
	if err := d.UnmarshalTOML(int64(90)); err != nil || d.Duration != 90*time.Second {
		t.Errorf("integer 90: %v, %v", d.Duration, err)
	}
	if err := d.UnmarshalTOML(int64(-1)); err == nil {
		t.Error("integer -1 accepted")
	}
	if err := d.UnmarshalTOML(1.5); err == nil {
		t.Error("float accepted")
	}
	if err := d.UnmarshalText([]byte("1-00:00:00")); err != nil || d.Duration != 24*time.Hour {
		t.Errorf("text: %v, %v", d.Duration, err)
	}
	text, _ := Duration{36 * time.Hour}.MarshalText()
	var back Duration
	if err := back.UnmarshalText(text); err != nil || back.Duration != 36*time.Hour {
		t.Errorf("round trip of %q: %v, %v", text, back.Duration, err)
	}
}

func TestDurationFormats(t *testing.T) {
	tests := []struct {
		d         time.Duration
		hms, slrm string
	}{
		{0, "00:00:00", "00:00:00"},
		{90 * time.Minute, "01:30:00", "01:30:00"},
		{24 * time.Hour, "24:00:00", "1-00:00:00"},
		{60*time.Hour + 5*time.Second, "60:00:05", "2-12:00:05"},
		{1500 * time.Millisecond, "00:00:02", "00:00:02"}, // rounds up
		{250 * time.Hour, "250:00:00", "10-10:00:00"},
	}
	for _, tc := range tests {
		d := Duration{tc.d}
		if got := d.HMS(); got != tc.hms {
			t.Errorf("%v.HMS() = %q, want %q", tc.d, got, tc.hms)
		}
		if got := d.SlurmTime(); got != tc.slrm {
			t.Errorf("%v.SlurmTime() = %q, want %q", tc.d, got, tc.slrm)
		}
		back, err := ParseDuration(d.SlurmTime())
		if err != nil || back.Duration != (time.Duration(d.seconds())*time.Second) {
			t.Errorf("SlurmTime %q does not parse back: %v, %v", d.SlurmTime(), back.Duration, err)
		}
	}
}
