//go:build !unix

package dirvolume

import "time"

// cpuTime is 0: the CPU time used is not known here.
func cpuTime() time.Duration { return 0 }
