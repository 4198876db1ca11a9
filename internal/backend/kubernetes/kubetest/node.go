//go:build tier3

package kubetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/miekg/dns"
)

// Tier 3: a real node. Node adds to a Cluster a kubelet and kube-proxy
// (built by `.ci/kube build-node`), a second containerd (Debian's, beside
// the Docker engine's) with Debian's CNI bridge plugin on a bridge the
// test makes, and the named images copied into it from the Docker engine.
// Pods run under runc: see docs/kubernetes.md for why not gVisor here.
// NetworkPolicies are enforced by kube-router's firewall (iptables and
// ipsets on the node), and the kubelet points pods at a cluster DNS
// Service (ClusterDNSIP) that ClusterDNS fills.
// It changes the host (bridges, iptables rules, mounts; all removed after),
// so it is built only with -tags tier3 and runs alone: .ci/run has a step
// for it, after the suites.

// NodeName is the real node's name.
const NodeName = "tier3-node"

const (
	// nodeBridge holds the node's address (the API server reaches the
	// kubelet there); podBridge is the CNI plugin's.
	nodeBridge = "cbtier3node"
	podBridge  = "cbtier3pods"
	nodeIP     = "10.211.0.1"
	podSubnet  = "10.244.0.0/24"
	// ClusterDNSIP is kube-system's kube-dns Service, in the API server's
	// Service range (10.96.0.0/16), as kubeadm places it.
	ClusterDNSIP = "10.96.0.10"
	// NodeIP is the node's address (the kubelet's, the host's).
	NodeIP = nodeIP
)

// Node starts tier 3 on p (from Cluster) and returns when the node is
// Ready and is the only schedulable one.
func Node(t testing.TB, p *Plane, images ...string) {
	t.Helper()
	bins := binDir(t)
	for _, b := range []string{filepath.Join(bins, "kubelet"), filepath.Join(bins, "kube-proxy"), filepath.Join(bins, "kube-router"), "/usr/bin/containerd", "/usr/bin/ctr", "/usr/lib/cni/bridge"} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("tier 3 needs %s (.ci/kube build-node; apt-get install containerd containernetworking-plugins)", b)
		}
	}
	ctx := context.Background()
	dir := filepath.Join(p.Dir, "node")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	for _, d := range []string{"cni", "root", "kubelet", "pause"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := "/run/claude-bottle-tier3"

	// The host side, removed last: the bridge with the node's address, and
	// forwarding between pods (Docker's FORWARD policy is DROP).
	run("ip", "link", "add", nodeBridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", nodeBridge).Run() })
	run("ip", "addr", "add", nodeIP+"/32", "dev", nodeBridge)
	run("ip", "link", "set", nodeBridge, "up")
	t.Cleanup(func() { exec.Command("ip", "link", "del", podBridge).Run() })
	run("iptables", "-I", "FORWARD", "1", "-i", podBridge, "-o", podBridge, "-j", "ACCEPT")
	t.Cleanup(func() {
		exec.Command("iptables", "-D", "FORWARD", "-i", podBridge, "-o", podBridge, "-j", "ACCEPT").Run()
	})
	t.Cleanup(func() { unmountUnder(dir, state); os.RemoveAll(state) })

	write(t, filepath.Join(dir, "cni", "10-bridge.conflist"), []byte(fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "tier3", "plugins": [
 {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
  "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}`, podBridge, filepath.Join(dir, "ipam"), podSubnet)))
	// restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and runc
	// cannot give the pause container its -998 without it.
	write(t, filepath.Join(dir, "containerd.toml"), []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`, filepath.Join(dir, "root"), state, state+"/containerd.sock", filepath.Join(dir, "cni"))))
	sock := state + "/containerd.sock"
	// Shims outlive containerd: end them before it stops (cleanups run
	// last-registered first).
	start(t, dir, "containerd", "/usr/bin/containerd", "--config", filepath.Join(dir, "containerd.toml"))
	t.Cleanup(func() { exec.Command("pkill", "-9", "-f", "containerd-shim-runc-v2 .*-address "+sock).Run() })
	waitFor(t, 30*time.Second, "containerd", func() (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, nil
	})

	// The pause image (nothing can be pulled here) and the bottle's.
	pause := filepath.Join(dir, "pause")
	write(t, filepath.Join(pause, "go.mod"), []byte("module pause\n\ngo 1.26\n"))
	write(t, filepath.Join(pause, "main.go"), []byte("package main\n\nimport (\n\t\"os\"\n\t\"os/signal\"\n\t\"syscall\"\n)\n\nfunc main() {\n\tc := make(chan os.Signal, 1)\n\tsignal.Notify(c, syscall.SIGTERM, syscall.SIGINT)\n\t<-c\n}\n"))
	write(t, filepath.Join(pause, "Dockerfile"), []byte("FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n"))
	build := exec.Command("go", "build", "-o", "pause", ".")
	build.Dir, build.Env = pause, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, out)
	}
	run("docker", "build", "-q", "-t", "registry.k8s.io/pause:3.10", pause)
	for _, img := range append([]string{"registry.k8s.io/pause:3.10"}, images...) {
		sh := fmt.Sprintf("docker save %s | ctr -a %s -n k8s.io images import -", img, sock)
		run("sh", "-c", sh)
	}

	write(t, filepath.Join(dir, "kubelet.yaml"), []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
address: %s
readOnlyPort: 0
healthzPort: 0
resolvConf: /etc/resolv.conf
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
evictionHard: {}
localStorageCapacityIsolation: false
clusterDNS: [%s]
clusterDomain: cluster.local
`, nodeIP, sock, sock, ClusterDNSIP)))
	// The kubelet's own chains (KUBE-FIREWALL and canaries), once it and
	// kube-proxy have stopped.
	t.Cleanup(func() { exec.Command("sh", "-c", dropKubeChains).Run() })
	start(t, dir, "kubelet", filepath.Join(bins, "kubelet"), "--config", filepath.Join(dir, "kubelet.yaml"),
		"--kubeconfig", p.Kubeconfig, "--root-dir", filepath.Join(dir, "kubelet"), "--hostname-override", NodeName, "--node-ip", nodeIP)
	// kube-proxy leaves its iptables chains behind; --cleanup removes them
	// once it has stopped.
	t.Cleanup(func() { exec.Command(filepath.Join(bins, "kube-proxy"), "--cleanup").Run() })
	start(t, dir, "kube-proxy", filepath.Join(bins, "kube-proxy"), "--kubeconfig", p.Kubeconfig, "--hostname-override", NodeName,
		"--proxy-mode", "iptables", "--cluster-cidr", podSubnet,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))

	// The kwok node takes no pods while the real one is here; the real
	// one loses the not-ready taint no lifecycle controller removes.
	waitFor(t, 90*time.Second, "the real node to be Ready", func() (bool, error) {
		n, err := p.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				n.Spec.Taints = nil
				_, err := p.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
				return err == nil, nil
			}
		}
		return false, nil
	})
	kwok, err := p.Client.CoreV1().Nodes().Get(ctx, "kwok-node-0", metav1.GetOptions{})
	if err == nil {
		kwok.Spec.Taints = append(kwok.Spec.Taints, corev1.Taint{Key: "claude-bottle.dev/tier3", Value: "off", Effect: corev1.TaintEffectNoSchedule})
		if _, err := p.Client.CoreV1().Nodes().Update(ctx, kwok, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	apiForPods(t, p)

	// NetworkPolicies, enforced by kube-router's firewall alone (no
	// routing, no service proxy, no CNI: the bridge and kube-proxy do
	// those); --cleanup-config removes its chains and ipsets after.
	t.Cleanup(func() { exec.Command(filepath.Join(bins, "kube-router"), "--cleanup-config").Run() })
	start(t, dir, "kube-router", filepath.Join(bins, "kube-router"), "--kubeconfig", p.Kubeconfig, "--hostname-override", NodeName,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false", "--enable-pod-egress=false",
		"--health-port=0", "--metrics-port=0", "--service-cluster-ip-range=10.96.0.0/16", "-v", "1")
	// It names its node at start, so only once the node is there; the
	// test is worth nothing until its chains are in place.
	waitFor(t, 60*time.Second, "kube-router's NetworkPolicy chains", func() (bool, error) {
		out, err := exec.Command("iptables", "-S").Output()
		return err == nil && strings.Contains(string(out), "-N KUBE-ROUTER-FORWARD"), nil
	})
}

// apiForPods lets pods reach the API server as on a real cluster, through
// the kubernetes Service (10.96.0.1:443, in-cluster config): a forwarder
// on the node's address to the API server's loopback port, and
// default/kubernetes's EndpointSlice naming it (the test API server runs
// without an endpoint reconciler). Its serving certificate names
// 10.96.0.1, and the root CA publisher hands pods that certificate.
func apiForPods(t testing.TB, p *Plane) {
	t.Helper()
	u, err := url.Parse(p.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", u.Host)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	ctx := context.Background()
	var svc *corev1.Service
	waitFor(t, 30*time.Second, "the kubernetes Service", func() (bool, error) {
		svc, err = p.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err == nil, nil
	})
	name, port, proto, ready := svc.Spec.Ports[0].Name, int32(ln.Addr().(*net.TCPAddr).Port), corev1.ProtocolTCP, true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes-tier3", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{nodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	if _, err := p.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// ClusterDNS makes kube-system's kube-dns: a Service at ClusterDNSIP and a
// pod labelled k8s-app=kube-dns, as a cluster's DNS is, running image (the
// e2e clusterdns fixture, imported by Node), which forwards every query to
// a server in the test process on the node's address. That server answers
// as CoreDNS would for Services (NAME.NAMESPACE.svc.cluster.local, from
// the API) and for records (name to IPv4: the fixtures' outside names);
// everything else is NXDOMAIN. It returns when the pod is running.
func ClusterDNS(t testing.TB, p *Plane, image string, records map[string]string) {
	t.Helper()
	static := map[string]net.IP{}
	for name, ip := range records {
		static[dns.Fqdn(strings.ToLower(name))] = net.ParseIP(ip).To4()
	}
	answer := func(name string) net.IP {
		if ip, ok := static[name]; ok {
			return ip
		}
		svc, ns, ok := strings.Cut(strings.TrimSuffix(name, ".svc.cluster.local."), ".")
		if !ok || strings.Contains(ns, ".") || !strings.HasSuffix(name, ".svc.cluster.local.") {
			return nil
		}
		s, err := p.Client.CoreV1().Services(ns).Get(context.Background(), svc, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return net.ParseIP(s.Spec.ClusterIP).To4()
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			switch ip := answer(strings.ToLower(q.Name)); {
			case ip == nil:
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: ip})
			}
		}
		w.WriteMsg(m)
	})
	port := freePort(t)
	addr := net.JoinHostPort(nodeIP, fmt.Sprint(port))
	for _, netw := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: addr, Net: netw, Handler: handler}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			t.Fatalf("cluster DNS on %s/%s: %v", addr, netw, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}

	labels := map[string]string{"k8s-app": "kube-dns"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system", Labels: labels},
		Spec: corev1.PodSpec{SecurityContext: LowPorts(), Containers: []corev1.Container{{Name: "dns", Image: image, ImagePullPolicy: corev1.PullNever,
			Env: []corev1.EnvVar{{Name: "FIXTURE_FORWARD", Value: addr}}}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system", Labels: labels},
		Spec: corev1.ServiceSpec{ClusterIP: ClusterDNSIP, Selector: labels, Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolTCP}}}}
	RunPod(t, p, pod, svc)
}

// LowPorts lets a pod's non-root fixture listen on ports below 1024 (as
// the Docker engine lets every container), with a sysctl Kubernetes
// counts as safe.
func LowPorts() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}}
}

// RunPod creates pod (and svc, if not nil) and waits until the pod runs;
// both are deleted at cleanup.
func RunPod(t testing.TB, p *Plane, pod *corev1.Pod, svc *corev1.Service) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pods := p.Client.CoreV1().Pods(pod.Namespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		pods.Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	if svc != nil {
		if _, err := p.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Client.CoreV1().Services(svc.Namespace).Delete(context.Background(), svc.Name, metav1.DeleteOptions{})
		})
	}
	var got *corev1.Pod
	waitFor(t, 90*time.Second, "pod "+pod.Namespace+"/"+pod.Name+" to run", func() (bool, error) {
		var err error
		got, err = pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if got.Status.Phase == corev1.PodFailed || got.Status.Phase == corev1.PodSucceeded {
			return false, fmt.Errorf("pod %s ended: %s", pod.Name, got.Status.Phase)
		}
		return got.Status.Phase == corev1.PodRunning && got.Status.PodIP != "", nil
	})
	return got
}

// dropKubeChains removes every KUBE-* iptables chain and every jump to one
// from a built-in chain (the kubelet's, kube-proxy's and kube-router's;
// nothing else here makes chains of that name).
const dropKubeChains = `for ipt in iptables ip6tables; do
	for tb in filter nat mangle; do
		$ipt -t $tb -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' | sed 's/^-A/-D/' | while read -r rule; do eval "$ipt -t $tb $rule"; done
		for c in $($ipt -t $tb -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $tb -F $c; done
		for c in $($ipt -t $tb -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $tb -X $c; done
	done
done`

// unmountUnder lazily unmounts every mount below the given directories,
// deepest first (containerd's rootfs and shm mounts outlive it).
func unmountUnder(dirs ...string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(fields[1], d+"/") {
				mounts = append(mounts, fields[1])
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		exec.Command("umount", "-l", m).Run()
	}
}
