//go:build !unix

package results

import "os"

// lockFile does nothing where flock is not available.
func lockFile(*os.File) (unlock func(), err error) { return func() {}, nil }
