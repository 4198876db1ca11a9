package kubetest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var sandboxes = schema.GroupVersionResource{Group: "agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxes"}

func minimalSandbox(ns string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
		"metadata": map[string]any{"name": "box", "namespace": ns},
		"spec": map[string]any{"podTemplate": map[string]any{"spec": map[string]any{
			"runtimeClassName":             "gvisor",
			"automountServiceAccountToken": false,
			"containers":                   []any{map[string]any{"name": "c", "image": "example.invalid/none:1"}},
		}}},
	}}
}

// Tier 1: the CRDs are served (a Sandbox is stored and read back), RBAC
// is enforced (a service account with no role is refused), and a deleted
// namespace really goes (the namespace controller runs).
func TestAPIServer(t *testing.T) {
	start := time.Now()
	p := APIServer(t)
	t.Logf("tier 1 up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	if _, err := p.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(sandboxes).Namespace("t1").Create(ctx, minimalSandbox("t1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := dyn.Resource(sandboxes).Namespace("t1").Get(ctx, "box", metav1.GetOptions{})
	if err != nil || got.GetName() != "box" {
		t.Fatalf("read back: %v", err)
	}
	_, err = p.As("t1", "nobody").CoreV1().ConfigMaps("t1").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a service account with no role listed ConfigMaps: %v", err)
	}
	if err := p.Client.CoreV1().Namespaces().Delete(ctx, "t1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "namespace t1 to go", func() (bool, error) {
		_, err := p.Client.CoreV1().Namespaces().Get(ctx, "t1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// Tier 2: the agent-sandbox controller makes the Sandbox's Pod, the
// scheduler puts it on the kwok node, kwok marks it Running, and the
// Sandbox goes Ready.
func TestCluster(t *testing.T) {
	start := time.Now()
	p := Cluster(t)
	t.Logf("tier 2 up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	if _, err := p.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t2"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, _ := dynamic.NewForConfig(p.Config)
	ready := time.Now()
	if _, err := dyn.Resource(sandboxes).Namespace("t2").Create(ctx, minimalSandbox("t2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the Sandbox to be Ready", func() (bool, error) {
		u, err := dyn.Resource(sandboxes).Namespace("t2").Get(ctx, "box", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("Sandbox Ready in %s", time.Since(ready).Round(time.Millisecond))
	pod, err := p.Client.CoreV1().Pods("t2").Get(ctx, "box", metav1.GetOptions{})
	if err != nil || pod.Spec.NodeName != "kwok-node-0" || pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("the Sandbox's pod: %v", err)
	}
}
