package kubetest

import (
	"os"
	"testing"
	"time"
)

// Not committed: holds a tier-2 cluster for the tier-3 experiment.
func TestHold(t *testing.T) {
	if os.Getenv("TIER3_HOLD") == "" {
		t.Skip()
	}
	p := Cluster(t)
	os.WriteFile("/var/tmp/tier3/kubeconfig.path", []byte(p.Kubeconfig), 0o644)
	for {
		if _, err := os.Stat("/var/tmp/tier3/stop"); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}
