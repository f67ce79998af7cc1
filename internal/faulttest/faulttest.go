// Package faulttest tells tests whether a write into memory faults: the
// check that received arrays are read-only.
package faulttest

import "runtime/debug"

// Faults runs write and reports whether it faulted (SIGSEGV on read-only
// memory), which debug.SetPanicOnFault turns into a panic of this
// goroutine, recovered here. A panic that is not a memory fault is
// re-raised.
func Faults(write func()) (faulted bool) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			faulted = true
		}
	}()
	write()
	return false
}
