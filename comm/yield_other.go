//go:build !linux

package comm

// yieldCPU is a no-op here: the spinning reader yields only to the
// process's goroutines.
func yieldCPU() {}
