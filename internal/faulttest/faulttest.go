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

// RewriteFaults reports whether writing b[0] back unchanged faults: a real
// store, which the compiler would drop if the test wrote `b[0] = b[0]`
// itself (a store of the value just loaded from the same address is
// eliminated, so a test doing that saw read-only memory as writable
// whenever it ran without the race detector).
func RewriteFaults(b []byte) bool { return Faults(func() { store(&b[0], b[0]) }) }

//go:noinline
func store(p *byte, v byte) { *p = v }
