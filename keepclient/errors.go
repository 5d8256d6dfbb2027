package keepclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keepproject/keep/internal/protocol"
)

// ErrTooLarge is returned by Put for blocks over locator.MaxBlockSize.
var ErrTooLarge = errors.New("block larger than 64 MiB")

// ServiceResult is the last thing one service answered during a write or read.
type ServiceResult struct {
	Service Service
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Message is the server's explanation or the transport error.
	Message string
	// Retryable reports whether another pass would try the service again.
	Retryable bool
	// Replicas is what the write counted the service's last answer for
	// (writes only): see Attempt.Replicas.
	Replicas int
}

func (r ServiceResult) String() string {
	switch r.Status {
	case 0:
		return fmt.Sprintf("%s: %s", r.Service, r.Message)
	case http.StatusOK:
		return fmt.Sprintf("%s: stored %d", r.Service, r.Replicas)
	}
	text := fmt.Sprintf("%s: %d %s", r.Service, r.Status, http.StatusText(r.Status))
	if r.Message != "" {
		text += ": " + r.Message
	}
	return text
}

// InsufficientReplicasError reports a write that stored fewer replicas
// (or fewer in some storage class) than wanted.
type InsufficientReplicasError struct {
	Locator string // hash+size of the block
	Wanted  int
	Stored  int
	// Classes holds the replicas confirmed per storage class, when the
	// write asked for classes.
	Classes map[string]int
	Passes  int
	// Services lists every writable service the write tried, in the
	// order it tried them first (probe order, except that services known
	// to be down or slow come last), with its last answer.
	Services []ServiceResult
	// Writable is the number of writable services the write knew of.
	Writable int
}

func (e *InsufficientReplicasError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "writing block %s: stored %d of %d replicas", e.Locator, e.Stored, e.Wanted)
	if e.Writable == 0 {
		b.WriteString(": no writable keep services")
		return b.String()
	}
	if e.Stored >= e.Wanted && len(e.Classes) > 0 {
		fmt.Fprintf(&b, " but storage classes fell short (%s)", formatClasses(e.Classes))
	}
	fmt.Fprintf(&b, " after %d pass", e.Passes)
	if e.Passes != 1 {
		b.WriteString("es")
	}
	fmt.Fprintf(&b, " over %d writable service", e.Writable)
	if e.Writable != 1 {
		b.WriteString("s")
	}
	writeResults(&b, e.Services)
	return b.String()
}

// NotFoundError reports a read for which every service answered 404.
type NotFoundError struct {
	Locator  string
	Services int
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("block %s not found on any of %d keep services", e.Locator, e.Services)
}

// ReadError reports a read that failed on every service for reasons
// other than 404 alone.
type ReadError struct {
	Locator  string
	Passes   int
	Services []ServiceResult
}

func (e *ReadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reading block %s failed after %d pass", e.Locator, e.Passes)
	if e.Passes != 1 {
		b.WriteString("es")
	}
	if len(e.Services) == 0 {
		b.WriteString(": no readable keep services")
	}
	writeResults(&b, e.Services)
	return b.String()
}

// Temporary reports whether trying the read again later might succeed.
func (e *ReadError) Temporary() bool {
	for _, r := range e.Services {
		if r.Retryable {
			return true
		}
	}
	return false
}

// writeResults appends ": r1; r2; ..." to b.
func writeResults(b *strings.Builder, rs []ServiceResult) {
	for i, r := range rs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
}

func formatClasses(m map[string]int) string { return protocol.FormatConfirmed(m) }
