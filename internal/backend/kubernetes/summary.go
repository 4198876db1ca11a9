package kubernetes

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/claude-bottle/claude-bottle/internal/plan"
)

var placeholderCIDR = apiServerRules(nil)[0].To[0].IPBlock.CIDR

// Undo is how a failed or interrupted start is cleaned up on a cluster.
const Undo = "on failure the namespace is deleted, with everything in it"

// Lines summarises the objects for the text plan, one a line, in
// creation order. Secrets show their keys, never a value.
func Lines(o *Objects) []plan.ObjectLine {
	out := []plan.ObjectLine{{Kind: "Namespace", Name: o.Namespace.Name,
		Detail: "labelled as ours; pod security " + o.Namespace.Labels["pod-security.kubernetes.io/enforce"]}}
	for _, x := range o.ServiceAccounts {
		detail := "no API token mounted"
		if x.AutomountServiceAccountToken == nil || *x.AutomountServiceAccountToken {
			detail = "API token mounted"
		}
		out = append(out, plan.ObjectLine{Kind: "ServiceAccount", Name: x.Name, Detail: detail})
	}
	for _, x := range o.Roles {
		out = append(out, plan.ObjectLine{Kind: "Role", Name: x.Name, Detail: rules(x.Rules)})
	}
	for _, x := range o.RoleBindings {
		var who []string
		for _, s := range x.Subjects {
			who = append(who, s.Kind+"/"+s.Name)
		}
		out = append(out, plan.ObjectLine{Kind: "RoleBinding", Name: x.Name, Detail: x.RoleRef.Kind + "/" + x.RoleRef.Name + " to " + strings.Join(who, ", ")})
	}
	for _, x := range o.NetworkPolicies {
		out = append(out, plan.ObjectLine{Kind: "NetworkPolicy", Name: x.Name, Detail: describePolicy(x)})
	}
	for _, x := range o.ConfigMaps {
		out = append(out, plan.ObjectLine{Kind: "ConfigMap", Name: x.Name, Detail: keys(x.Data, x.BinaryData)})
	}
	for _, x := range o.Secrets {
		out = append(out, plan.ObjectLine{Kind: "Secret", Name: x.Name, Detail: keys(x.StringData, x.Data) + " (values never shown)"})
	}
	for _, x := range o.Services {
		var ports []string
		for _, p := range x.Spec.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, strings.ToLower(string(p.Protocol))))
		}
		out = append(out, plan.ObjectLine{Kind: "Service", Name: x.Name, Detail: strings.Join(ports, ", ")})
	}
	for _, x := range o.Pods {
		out = append(out, plan.ObjectLine{Kind: "Pod", Name: x.Name, Detail: pod(x.Spec)})
	}
	out = append(out, plan.ObjectLine{Kind: "Sandbox", Name: o.Sandbox.Name, Detail: pod(o.Sandbox.Spec.PodTemplate.Spec)})
	return out
}

func pod(s corev1.PodSpec) string {
	var images []string
	for _, c := range s.Containers {
		images = append(images, c.Image)
	}
	rc := "the cluster's default runtime"
	if s.RuntimeClassName != nil {
		rc = "RuntimeClass " + *s.RuntimeClassName
	}
	token := ""
	if s.AutomountServiceAccountToken != nil && *s.AutomountServiceAccountToken {
		token = ", with its API token"
	}
	return fmt.Sprintf("%s as ServiceAccount %s%s, %s", strings.Join(images, ", "), s.ServiceAccountName, token, rc)
}

func keys[A, B any](a map[string]A, b map[string]B) string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	if len(ks) == 0 {
		return "empty"
	}
	return strings.Join(ks, ", ")
}

func rules(rs []rbacv1.PolicyRule) string {
	var out []string
	for _, r := range rs {
		what := strings.Join(r.Resources, ",")
		if len(r.ResourceNames) > 0 {
			what += " " + strings.Join(r.ResourceNames, ",")
		}
		out = append(out, strings.Join(r.Verbs, ",")+" "+what)
	}
	return strings.Join(out, "; ")
}

// describePolicy says whom a NetworkPolicy's pods may reach and be reached by.
func describePolicy(np *networkingv1.NetworkPolicy) string {
	sel := "every pod"
	if r := np.Spec.PodSelector.MatchLabels[plan.LabelRole]; r != "" {
		sel = r
	}
	var parts []string
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			var from []string
			for _, r := range np.Spec.Ingress {
				from = append(from, peers(r.From, r.Ports)...)
			}
			parts = append(parts, "in from "+orNothing(from))
		case networkingv1.PolicyTypeEgress:
			var to []string
			for _, r := range np.Spec.Egress {
				to = append(to, peers(r.To, r.Ports)...)
			}
			parts = append(parts, "out to "+orNothing(to))
		}
	}
	return sel + ": " + strings.Join(parts, "; ")
}

func orNothing(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

func peers(ps []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) []string {
	var ps2 []string
	for _, p := range ports {
		if p.Port != nil {
			ps2 = append(ps2, fmt.Sprintf("%s/%s", p.Port.String(), strings.ToLower(string(*p.Protocol))))
		}
	}
	suffix := ""
	if len(ps2) > 0 {
		suffix = " " + strings.Join(ps2, ",")
	}
	var out []string
	for _, p := range ps {
		switch {
		case p.IPBlock != nil && len(p.IPBlock.Except) > 0:
			out = append(out, p.IPBlock.CIDR+" except "+strings.Join(p.IPBlock.Except, " ")+suffix)
		case p.IPBlock != nil && p.IPBlock.CIDR == placeholderCIDR:
			out = append(out, "the API server (its address filled in at start)"+suffix)
		case p.IPBlock != nil:
			out = append(out, p.IPBlock.CIDR+suffix)
		case p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName] == "kube-system" && p.PodSelector != nil && p.PodSelector.MatchLabels["k8s-app"] == "kube-dns":
			out = append(out, "cluster DNS"+suffix)
		case p.NamespaceSelector != nil:
			who := "every pod"
			if p.PodSelector != nil && len(p.PodSelector.MatchLabels) > 0 {
				var ls []string
				for _, k := range sortedKeys(p.PodSelector.MatchLabels) {
					ls = append(ls, k+"="+p.PodSelector.MatchLabels[k])
				}
				who = "pods " + strings.Join(ls, ",")
			}
			out = append(out, who+" in namespace "+p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]+suffix)
		case p.PodSelector != nil:
			out = append(out, cmp.Or(p.PodSelector.MatchLabels[plan.LabelRole], "any pod here")+suffix)
		}
	}
	if len(ps) == 0 {
		out = append(out, "anywhere"+suffix)
	}
	return out
}
