//go:build unix

package keepstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockVolume takes the exclusive lock of the volume at root, writing
// this process's ID into the lock file for the message another server
// gets. The lock is an flock(2) lock: the kernel drops it when the
// process dies, however it dies, so a crash never leaves a volume locked.
func lockVolume(root string) (*os.File, error) {
	p := filepath.Join(root, lockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("volume %s: cannot create its lock file: %w", root, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &VolumeInUseError{Root: root, Holder: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("volume %s: cannot lock %s: %w", root, p, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockVolume releases a lock taken by lockVolume.
func unlockVolume(f *os.File) error {
	return f.Close() // closing the descriptor drops the flock
}
