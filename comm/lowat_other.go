//go:build !linux

package comm

const lowatOK = false

func setRcvLowat(uintptr, int) error { return nil }

func unread(uintptr) (int, error) { return 0, nil }
