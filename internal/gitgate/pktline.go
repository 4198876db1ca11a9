package gitgate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const (
	maxPktLen     = 65520 // git's LARGE_PACKET_MAX, including the 4-byte length
	maxRefUpdates = 10000
)

// ParseRefUpdates reads the command list that opens a receive-pack request:
// "old new ref\0capabilities", then "old new ref" lines, up to a flush
// packet. It stops there; the pack that follows is left unread. Leading
// "shallow" lines are skipped; signed pushes (push-cert) are refused.
func ParseRefUpdates(r io.Reader) ([]RefUpdate, error) {
	var out []RefUpdate
	var hdr [4]byte
	buf := make([]byte, maxPktLen)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, errors.New("truncated command list (no flush packet)")
			}
			return nil, err
		}
		n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
		if err != nil {
			return nil, fmt.Errorf("bad pkt-line length %q", hdr[:])
		}
		if n == 0 {
			return out, nil
		}
		if n < 4 || n > maxPktLen {
			return nil, fmt.Errorf("bad pkt-line length %d", n)
		}
		line := buf[:n-4]
		if _, err := io.ReadFull(r, line); err != nil {
			return nil, errors.New("truncated pkt-line")
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(out) == 0 {
			if bytes.HasPrefix(line, []byte("shallow ")) {
				continue
			}
			if bytes.HasPrefix(line, []byte("push-cert")) {
				return nil, errors.New("signed pushes are not supported")
			}
			if i := bytes.IndexByte(line, 0); i >= 0 {
				line = line[:i]
			}
		} else if bytes.IndexByte(line, 0) >= 0 {
			return nil, errors.New("NUL in a ref-update command after the first")
		}
		u, err := parseCommand(string(line))
		if err != nil {
			return nil, err
		}
		if len(out) == maxRefUpdates {
			return nil, fmt.Errorf("more than %d ref updates in one push", maxRefUpdates)
		}
		out = append(out, u)
	}
}

func parseCommand(s string) (RefUpdate, error) {
	f := strings.Split(s, " ")
	if len(f) != 3 || !validOID(f[0]) || !validOID(f[1]) || len(f[0]) != len(f[1]) || f[2] == "" {
		return RefUpdate{}, fmt.Errorf("malformed ref-update command %q", truncate(s, 200))
	}
	return RefUpdate{Old: f[0], New: f[1], Ref: f[2]}, nil
}

// parseHookInput reads a pre-receive hook's stdin: one "old new ref" per line.
func parseHookInput(r io.Reader) ([]RefUpdate, error) {
	var out []RefUpdate
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxPktLen)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		u, err := parseCommand(sc.Text())
		if err != nil {
			return nil, err
		}
		if len(out) == maxRefUpdates {
			return nil, fmt.Errorf("more than %d ref updates in one push", maxRefUpdates)
		}
		out = append(out, u)
	}
	return out, sc.Err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
