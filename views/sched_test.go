package views

import (
	"errors"
	"reflect"
	"testing"
)

// The scheduler's own tests are in internal/hubcore (sched_test.go).

func TestCodesMatchSentinels(t *testing.T) {
	re := &RemoteError{Code: CodeImpossibleDependency}
	if !errors.Is(re, ErrImpossibleDependency) || errors.Is(re, ErrDependencyTimeout) {
		t.Fatal("codes do not match sentinels")
	}
}

func TestPartition(t *testing.T) {
	if got := partition(16, 2); !reflect.DeepEqual(got, []int{0, 8, 16}) {
		t.Fatal(got)
	}
	if got := partition(5, 3); !reflect.DeepEqual(got, []int{0, 2, 4, 5}) {
		t.Fatal(got)
	}
	if got := partition(1, 3); !reflect.DeepEqual(got, []int{0, 1, 1, 1}) {
		t.Fatal(got)
	}
}
