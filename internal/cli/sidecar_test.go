package cli

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestProxyGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	origLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(orig)
		debug.SetMemoryLimit(origLimit)
	})

	proxyGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != proxyGCPercent {
		t.Fatalf("GC percent %d with GOGC unset, want %d", got, proxyGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != proxyMemoryLimit {
		t.Fatalf("memory limit %d with GOMEMLIMIT unset, want %d", got, proxyMemoryLimit)
	}
	proxyGC(func(k string) string {
		switch k {
		case "GOGC":
			return "50"
		case "GOMEMLIMIT":
			return "1GiB"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set, want it left alone (100)", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Fatalf("memory limit %d with GOMEMLIMIT set, want it left alone", got)
	}
}
