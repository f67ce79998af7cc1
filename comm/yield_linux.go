package comm

import "syscall"

// yieldCPU gives this thread's core to another runnable thread, if any
// (sched_yield; returns at once when none waits). A raw system call: it
// never blocks, so the Go scheduler need not hand the P to another thread.
func yieldCPU() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
