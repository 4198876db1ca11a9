package kubernetes

// Supervise on a cluster: the host cannot share a directory with the
// sidecar, so requests and decisions travel through the API. The supervise
// sidecar files each request as a ConfigMap (its Role may create
// ConfigMaps, never change or delete one) and reads decisions from the one
// Secret the host writes (get only). The launcher copies requests into the
// instance's stage directory, where `claude-bottle supervise` finds them as
// on Docker, and copies the decisions written there back into the Secret.
// The agent has no API token and no route to the API server.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// RequestKey is the key of a request ConfigMap that holds the request.
const RequestKey = "request.json"

// requestConfigMap is the ConfigMap a request travels in.
func requestConfigMap(id string) string { return "request-" + id }

// SyncInterval is how often each side looks at the other's writes.
const SyncInterval = time.Second

// SuperviseRemote is the supervise sidecar's side (supervise.Remote).
type SuperviseRemote struct {
	cs  k8s.Interface
	ns  string
	log *slog.Logger

	mu        sync.Mutex
	decisions map[string][]byte
	failing   bool
}

var _ supervise.Remote = (*SuperviseRemote)(nil)

// NewSuperviseRemote reads decisions from the cluster until ctx ends.
func NewSuperviseRemote(ctx context.Context, log *slog.Logger, cs k8s.Interface, namespace string) *SuperviseRemote {
	r := &SuperviseRemote{cs: cs, ns: namespace, log: log, decisions: map[string][]byte{}}
	r.refresh(ctx)
	go stage.Every(ctx, SyncInterval, func() { r.refresh(ctx) })
	return r
}

func (r *SuperviseRemote) refresh(ctx context.Context) {
	s, err := r.cs.CoreV1().Secrets(r.ns).Get(ctx, DecisionsSecret, metav1.GetOptions{})
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// Once per outage, not once a second.
		if ctx.Err() == nil && !r.failing {
			r.log.Warn("read decisions (retrying every second; logged again when it works)", "err", err)
		}
		r.failing = true
		return
	}
	if r.failing {
		r.log.Info("read decisions: works again")
	}
	r.failing = false
	r.decisions = maps.Clone(s.Data)
}

// InClusterRemote is the supervise sidecar's remote inside its pod: the
// pod's service-account token, and its namespace, the instance's.
func InClusterRemote(ctx context.Context, log *slog.Logger, namespace string) (*SuperviseRemote, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("supervise --kube: %w", err)
	}
	cfg.UserAgent = "claude-bottle-supervise"
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return nil, fmt.Errorf("supervise --kube: no --instance and no namespace file: %w", err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	return NewSuperviseRemote(ctx, log, cs, namespace), nil
}

// Publish implements supervise.Remote.
func (r *SuperviseRemote) Publish(ctx context.Context, req supervise.Request, raw []byte) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: requestConfigMap(req.ID), Namespace: r.ns,
			Labels: map[string]string{LabelRequest: "true", plan.LabelInstance: r.ns, plan.LabelRole: plan.RoleSupervise}},
		Data: map[string]string{RequestKey: string(raw)},
	}
	_, err := r.cs.CoreV1().ConfigMaps(r.ns).Create(ctx, cm, metav1.CreateOptions{})
	return err
}

// Decision implements supervise.Remote.
func (r *SuperviseRemote) Decision(id string) *supervise.Decision {
	r.mu.Lock()
	b, ok := r.decisions[id+".json"]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return supervise.ParseDecision(b, id)
}

// syncSupervise runs the host's side for one instance until ctx ends.
func (b *Backend) syncSupervise(ctx context.Context, instance string) {
	sync := func() {
		if err := b.syncSuperviseOnce(ctx, instance); err != nil && ctx.Err() == nil {
			b.Log.Warn("supervise: sync with the cluster", "instance", instance, "err", err)
		}
	}
	sync()
	stage.Every(ctx, SyncInterval, sync)
}

// syncSuperviseOnce copies new requests from the cluster into the stage
// directory (each validated as the host validates a file: one that does
// not parse is never shown nor decidable) and the stage directory's
// decisions into the Secret.
func (b *Backend) syncSuperviseOnce(ctx context.Context, instance string) error {
	dir := stage.InstanceDir(b.State, instance)
	cms, err := b.cs.CoreV1().ConfigMaps(instance).List(ctx, metav1.ListOptions{LabelSelector: LabelRequest})
	if err != nil {
		return fmt.Errorf("list requests: %w", err)
	}
	var errs []error
	for _, cm := range cms.Items {
		id, ok := strings.CutPrefix(cm.Name, "request-")
		if !ok || !supervise.ValidID(id) {
			continue
		}
		path := filepath.Join(dir, stage.SuperviseReqs, id+".json")
		if _, err := os.Lstat(path); err == nil {
			continue
		}
		raw := []byte(cm.Data[RequestKey])
		if _, err := supervise.ParseRequest(raw, id); err != nil {
			errs = append(errs, fmt.Errorf("ConfigMap %s is not a request: %w", cm.Name, err))
			continue
		}
		if err := stage.WriteFile(path, raw, 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, stage.SuperviseDecided))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.Join(append(errs, err)...)
	}
	local := map[string][]byte{}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !supervise.ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		c, err := os.ReadFile(filepath.Join(dir, stage.SuperviseDecided, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		local[e.Name()] = c
	}
	if len(local) == 0 {
		return errors.Join(errs...)
	}
	s, err := b.cs.CoreV1().Secrets(instance).Get(ctx, DecisionsSecret, metav1.GetOptions{})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read decisions: %w", err))...)
	}
	changed := false
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range local {
		if string(s.Data[k]) != string(v) {
			s.Data[k], changed = v, true
		}
	}
	if changed {
		if _, err := b.cs.CoreV1().Secrets(instance).Update(ctx, s, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("write decisions: %w", err))
		}
	}
	return errors.Join(errs...)
}
