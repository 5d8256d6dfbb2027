package netbed

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Rates, in bits per second.
const (
	Mbit int64 = 1e6
	Gbit int64 = 1e9
)

// Link is how a host's link to the bridge behaves, the same both ways.
type Link struct {
	// Rate is the most the link carries each way, in bits per second;
	// 0 leaves it unshaped.
	Rate int64
	// Down cuts the link: nothing passes either way, and nothing is
	// told so (no reset, no unreachable): a partition.
	Down bool
}

// tbfLatency is how long a packet may wait in a link's queue: the
// queue holds this much at the link's rate. Enough for TCP to keep a
// link of a few hundred Mbit/s busy at these round-trip times, short
// enough that a slow link does not look like a dead one.
const tbfLatency = 20 * time.Millisecond

// burstBytes is the token bucket's depth for a rate: 10 ms at that
// rate, at least 64 KiB (one GSO packet the veth may hand over at once).
func burstBytes(rate int64) int64 { return max(rate/8/100, 64<<10) }

// SetLink changes the host's link to link, in place: processes and
// connections carry on, at the new rate or, with Down, waiting.
func (h *Host) SetLink(ctx context.Context, link Link) error {
	if link.Rate < 0 {
		return fmt.Errorf("netbed: host %s: negative rate %d", h.name, link.Rate)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.shape(ctx, link.Rate); err != nil {
		return fmt.Errorf("netbed: host %s: shaping the link to %s: %w", h.name, FormatRate(link.Rate), err)
	}
	h.link.Rate = link.Rate
	if link.Down != h.link.Down {
		state := "up"
		if link.Down {
			state = "down"
		}
		// The root end going down takes the carrier from eth0 too, so
		// neither end sends; the host's address and routes stay.
		if _, err := h.tb.ip(ctx, "link", "set", h.veth, state); err != nil {
			return fmt.Errorf("netbed: host %s: setting the link %s: %w", h.name, state, err)
		}
		h.link.Down = link.Down
	}
	return nil
}

// shape puts a tbf of rate on both ends' egress, each end shaping what
// it sends: the root end what the host receives, eth0 what it sends.
// Rate 0 removes them.
func (h *Host) shape(ctx context.Context, rate int64) error {
	if rate == h.link.Rate {
		return nil
	}
	ends := []struct {
		ns  []string // tc's arguments to enter the namespace
		dev string
	}{{nil, h.veth}, {[]string{"-n", h.ns}, "eth0"}}
	for _, end := range ends {
		args := append(append([]string(nil), end.ns...), "qdisc")
		if rate == 0 {
			args = append(args, "del", "dev", end.dev, "root")
		} else {
			args = append(args, "replace", "dev", end.dev, "root", "tbf",
				"rate", strconv.FormatInt(rate, 10)+"bit",
				"burst", strconv.FormatInt(burstBytes(rate), 10),
				"latency", strconv.FormatInt(tbfLatency.Milliseconds(), 10)+"ms")
		}
		if _, err := h.tb.tc(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Link returns the host's link as last set.
func (h *Host) Link() Link {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.link
}

// Cut takes the host's link down, keeping its rate: a partition of the
// host from every other.
func (h *Host) Cut(ctx context.Context) error {
	l := h.Link()
	l.Down = true
	return h.SetLink(ctx, l)
}

// Restore brings the host's link back up after Cut.
func (h *Host) Restore(ctx context.Context) error {
	l := h.Link()
	l.Down = false
	return h.SetLink(ctx, l)
}

// Traffic returns the bytes the host has received and sent over its
// link so far, as the root end of the link counts them.
func (h *Host) Traffic() (received, sent int64, err error) {
	dir := "/sys/class/net/" + h.veth + "/statistics/"
	// The root end transmits what the host receives.
	if received, err = readCounter(dir + "tx_bytes"); err != nil {
		return 0, 0, fmt.Errorf("netbed: host %s: %w", h.name, err)
	}
	if sent, err = readCounter(dir + "rx_bytes"); err != nil {
		return 0, 0, fmt.Errorf("netbed: host %s: %w", h.name, err)
	}
	return received, sent, nil
}

// readCounter reads a number from a sysfs file.
func readCounter(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a number: %q", path, data)
	}
	return n, nil
}

// FormatRate formats bits per second as "200 Mbit/s"; 0 is
// "unshaped".
func FormatRate(bits int64) string {
	switch {
	case bits == 0:
		return "unshaped"
	case bits%Gbit == 0:
		return strconv.FormatInt(bits/Gbit, 10) + " Gbit/s"
	case bits%Mbit == 0:
		return strconv.FormatInt(bits/Mbit, 10) + " Mbit/s"
	}
	return strconv.FormatInt(bits, 10) + " bit/s"
}
