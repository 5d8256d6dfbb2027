package netbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// tools are the paths of the commands a testbed runs.
type tools struct {
	ip, tc string
}

// findTools looks for ip and tc and checks that this process may use
// them (root), returning an error that says what is missing.
func findTools() (tools, error) {
	var t tools
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces and tc need it)")
	}
	for _, c := range []struct {
		name string
		path *string
	}{{"ip", &t.ip}, {"tc", &t.tc}} {
		p, err := lookPath(c.name)
		if err != nil {
			missing = append(missing, c.name+" (iproute2)")
			continue
		}
		*c.path = p
	}
	if len(missing) > 0 {
		return t, errors.New("netbed needs " + strings.Join(missing, " and "))
	}
	return t, nil
}

// lookPath finds a command in PATH, then in /usr/sbin and /sbin, where
// iproute2 lives but which a non-login PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", name)
}

// run runs the program path with args to its end and returns its
// standard output. A failure's error has the command line and its
// standard error.
func run(ctx context.Context, path string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{path}, args...), " ")
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s: %v: %s", line, err, msg)
		}
		return "", fmt.Errorf("%s: %v", line, err)
	}
	return stdout.String(), nil
}
