package transfer

import (
	"bufio"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// umask returns the process's file mode creation mask, read from
// /proc/self/status where the system has it (reading it any other way
// means changing it), else the usual 022.
func umask() fs.FileMode {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o022
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return fs.FileMode(m)
			}
		}
	}
	return 0o022
}
