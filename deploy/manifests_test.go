// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	manifestPath = "kubernetes/otelcol-ebpfnet.yaml"
	unitPath     = "systemd/otelcol-ebpfnet.service"
)

// manifests holds every object of the Kubernetes manifest, decoded into its
// API type.
type manifests struct {
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	configMaps      []corev1.ConfigMap
	clusterRoles    []rbacv1.ClusterRole
	bindings        []rbacv1.ClusterRoleBinding
	daemonSets      []appsv1.DaemonSet
}

// loadManifests splits the multi-document file and decodes each document
// strictly: a field the API type does not have (a typo, a wrong level) fails
// the test, as the API server would reject it.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for i, doc := range splitDocuments(raw) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		newDst, ok := map[string]func() any{
			"v1/Namespace":      func() any { return appendNew(&m.namespaces) },
			"v1/ServiceAccount": func() any { return appendNew(&m.serviceAccounts) },
			"v1/ConfigMap":      func() any { return appendNew(&m.configMaps) },
			"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return appendNew(&m.clusterRoles) },
			"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return appendNew(&m.bindings) },
			"apps/v1/DaemonSet":                               func() any { return appendNew(&m.daemonSets) },
		}[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			t.Fatalf("document %d: unexpected kind %s/%s", i, tm.APIVersion, tm.Kind)
		}
		dst := newDst()
		if err := yaml.UnmarshalStrict(doc, dst); err != nil {
			t.Fatalf("document %d (%s): %v", i, tm.Kind, err)
		}
	}
	return m
}

func splitDocuments(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(raw, []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// systemdUnit returns the key=value lines of the unit file by key.
func systemdUnit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := make(map[string][]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a key=value line: %q", unitPath, line)
		}
		keys[k] = append(keys[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestDaemonSet(t *testing.T) {
	m := loadManifests(t)
	if len(m.daemonSets) != 1 || len(m.configMaps) != 1 || len(m.serviceAccounts) != 1 {
		t.Fatalf("want one DaemonSet, ConfigMap and ServiceAccount, got %d, %d, %d", len(m.daemonSets), len(m.configMaps), len(m.serviceAccounts))
	}
	ds := m.daemonSets[0]
	spec := ds.Spec.Template.Spec

	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	if !spec.HostPID {
		t.Error("hostPID must be true: the receiver reads /proc/<pid> of host pids")
	}
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v, dnsPolicy %q: want the node's network namespace (its conntrack, where kube-proxy translates) and %q (cluster DNS from it)",
			spec.HostNetwork, spec.DNSPolicy, corev1.DNSClusterFirstWithHostNet)
	}
	if spec.ServiceAccountName != m.serviceAccounts[0].Name || ds.Namespace != m.serviceAccounts[0].Namespace {
		t.Errorf("serviceAccountName %q in %q, want %q in %q", spec.ServiceAccountName, ds.Namespace, m.serviceAccounts[0].Name, m.serviceAccounts[0].Namespace)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the container needs a securityContext with capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: capabilities instead")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities.drop = %v, want [ALL]", sc.Capabilities.Drop)
	}
	// The same capabilities as the systemd unit, which the e2e test runs
	// the collector with.
	var want []string
	for _, c := range strings.Fields(strings.Join(systemdUnit(t)["AmbientCapabilities"], " ")) {
		want = append(want, strings.TrimPrefix(c, "CAP_"))
	}
	var got []string
	for _, c := range sc.Capabilities.Add {
		got = append(got, string(c))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("capabilities.add = %v, want the systemd unit's %v", got, want)
	}

	env := make(map[string]corev1.EnvVar)
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["K8S_NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("K8S_NODE_NAME must come from spec.nodeName, got %+v", e)
	}

	// The config volume is the ConfigMap, mounted where --config points.
	var mounted bool
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == m.configMaps[0].Name {
			for _, vm := range c.VolumeMounts {
				if vm.Name == v.Name && slices.Contains(c.Args, "--config="+vm.MountPath+"/config.yaml") {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("args %v do not point at config.yaml of ConfigMap %s", c.Args, m.configMaps[0].Name)
	}

	// The cgroup programs attach at /sys/fs/cgroup: it must be the node's
	// cgroup2 root, not the pod's cgroup namespace.
	var hostCgroup bool
	for _, v := range spec.Volumes {
		if v.HostPath != nil && v.HostPath.Path == "/sys/fs/cgroup" {
			for _, vm := range c.VolumeMounts {
				hostCgroup = hostCgroup || (vm.Name == v.Name && vm.MountPath == "/sys/fs/cgroup")
			}
		}
	}
	if !hostCgroup {
		t.Error("the node's /sys/fs/cgroup must be mounted at /sys/fs/cgroup")
	}
}

func TestRBAC(t *testing.T) {
	m := loadManifests(t)
	if len(m.clusterRoles) != 1 || len(m.bindings) != 1 {
		t.Fatalf("want one ClusterRole and ClusterRoleBinding, got %d, %d", len(m.clusterRoles), len(m.bindings))
	}
	role, b := m.clusterRoles[0], m.bindings[0]
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != role.Name {
		t.Errorf("roleRef %+v does not name ClusterRole %s", b.RoleRef, role.Name)
	}
	sa := m.serviceAccounts[0]
	if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == "ServiceAccount" && s.Name == sa.Name && s.Namespace == sa.Namespace
	}) {
		t.Errorf("subjects %+v do not include ServiceAccount %s/%s", b.Subjects, sa.Namespace, sa.Name)
	}
	// What k8s_attributes reads.
	for _, need := range []struct{ group, resource string }{{"", "pods"}, {"", "namespaces"}, {"apps", "replicasets"}} {
		if !allows(role, need.group, need.resource, "get", "list", "watch") {
			t.Errorf("ClusterRole %s does not allow get, list, watch on %q %s", role.Name, need.group, need.resource)
		}
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("ClusterRole %s grants %q: read-only verbs only", role.Name, v)
			}
		}
	}
}

func allows(role rbacv1.ClusterRole, group, resource string, verbs ...string) bool {
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) {
			ok := true
			for _, v := range verbs {
				ok = ok && slices.Contains(r.Verbs, v)
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// TestCollectorConfig checks the wiring of the ConfigMap's collector
// configuration; the e2e test validates it with the real binary.
func TestCollectorConfig(t *testing.T) {
	m := loadManifests(t)
	raw, ok := m.configMaps[0].Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", m.configMaps[0].Name)
	}
	var cfg struct {
		Processors map[string]struct {
			PodAssociation []struct {
				Sources []struct {
					From string `json:"from"`
					Name string `json:"name"`
				} `json:"sources"`
			} `json:"pod_association"`
		} `json:"processors"`
		Service struct {
			Pipelines map[string]struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	var byContainerID bool
	for _, a := range cfg.Processors["k8s_attributes"].PodAssociation {
		for _, s := range a.Sources {
			byContainerID = byContainerID || (s.From == "resource_attribute" && s.Name == "container.id")
		}
	}
	if !byContainerID {
		t.Error("k8s_attributes must associate pods by the container.id resource attribute")
	}
	p, ok := cfg.Service.Pipelines["metrics"]
	if !ok || !slices.Contains(p.Receivers, "ebpfnet") {
		t.Fatalf("no metrics pipeline with the ebpfnet receiver: %+v", cfg.Service.Pipelines)
	}
	if len(p.Processors) == 0 || p.Processors[0] != "memory_limiter" || !slices.Contains(p.Processors, "k8s_attributes") {
		t.Errorf("processors %v: want memory_limiter first and k8s_attributes", p.Processors)
	}
}

func TestSystemdUnit(t *testing.T) {
	u := systemdUnit(t)
	one := func(k string) string {
		if len(u[k]) != 1 {
			t.Errorf("%s: want exactly one %s line, got %q", unitPath, k, u[k])
			return ""
		}
		return u[k][0]
	}
	ambient, bounding := strings.Fields(one("AmbientCapabilities")), strings.Fields(one("CapabilityBoundingSet"))
	slices.Sort(ambient)
	slices.Sort(bounding)
	if !slices.Equal(ambient, bounding) {
		t.Errorf("AmbientCapabilities %v and CapabilityBoundingSet %v differ", ambient, bounding)
	}
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"} {
		if !slices.Contains(ambient, c) {
			t.Errorf("AmbientCapabilities lacks %s", c)
		}
	}
	for _, c := range ambient {
		if c == "CAP_SYS_ADMIN" {
			t.Error("CAP_SYS_ADMIN: the narrow capabilities are enough")
		}
	}
	if one("DynamicUser") != "yes" && len(u["User"]) == 0 {
		t.Error("the service must not run as root: DynamicUser=yes or User=")
	}
	for k, want := range map[string]string{"NoNewPrivileges": "yes", "KillSignal": "SIGTERM", "LimitMEMLOCK": "infinity"} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if exec := one("ExecStart"); !strings.Contains(exec, "--config") {
		t.Errorf("ExecStart %q passes no --config", exec)
	}
}

// appendNew appends a zero value to *s and returns a pointer to it.
func appendNew[T any](s *[]T) *T {
	*s = append(*s, *new(T))
	return &(*s)[len(*s)-1]
}
