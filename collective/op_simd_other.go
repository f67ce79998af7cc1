//go:build !amd64 || purego

package collective

// hasSIMD reports whether the AVX2 kernels are in use: never here.
const hasSIMD = false

func registerSIMD() {}
