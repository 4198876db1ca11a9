package cli

import (
	"runtime/debug"
	"testing"
)

func TestProxyGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	proxyGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != proxyGCPercent {
		t.Fatalf("GC percent %d with GOGC unset, want %d", got, proxyGCPercent)
	}
	proxyGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set, want it left alone (100)", got)
	}
}
