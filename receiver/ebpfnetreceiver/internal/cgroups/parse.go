// SPDX-License-Identifier: Apache-2.0

package cgroups

import "strings"

// Runtimes named in Identity.Runtime.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
	RuntimePodman     = "podman"
)

// Identity is what a cgroup path says about the container that owns it.
// The zero value means the path is not a container's (a host service, a
// login session, a container runtime's monitor such as conmon).
type Identity struct {
	ContainerID string // 64 lowercase hex digits, the runtime's full id
	PodUID      string // Kubernetes pod UID: a dashed UUID, or 32 hex digits for static pods
	Runtime     string // one of the Runtime constants; "" when the path shape does not tell
}

// Parse reads a cgroup v2 path, relative to the cgroup2 root (as in
// /proc/<pid>/cgroup, "0::" removed), and returns the container and pod it
// belongs to.
//
// The deepest component that names a container wins: what lies below it is
// the container's own sub-tree (podman's "container" and "init" leaves, a
// cgroup namespace's "/init", systemd running inside the container), and
// with docker-in-docker the inner container is the one the process is in.
// A pod UID is taken from the kubepods component at or above it. A
// component that names a runtime monitor (crio-conmon-, libpod-conmon-)
// is not a container: its process keeps the pod, not a container id.
//
// Shapes and where they come from (the naming code of each project):
//
//   - kubelet, systemd driver (pkg/kubelet/cm cgroupName.ToSystemd):
//     /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/...
//     with "-" of the UID written "_" (systemd uses "-" as the slice
//     hierarchy separator); guaranteed pods sit right under kubepods.slice
//     as kubepods-pod<uid>.slice. kind and other kubelet-in-a-unit setups
//     root it under /kubelet.slice/kubelet-kubepods.slice/... .
//   - kubelet, cgroupfs driver: /kubepods/<qos>/pod<uid>/<container> with a
//     dashed UID; guaranteed pods are /kubepods/pod<uid>/<container>.
//   - static pods: the UID is the hash kubelet computes from the manifest,
//     32 hex digits without dashes; kept as is.
//   - containerd CRI plugin: systemd driver cri-containerd-<id>.scope,
//     cgroupfs driver the bare <id> under the pod.
//   - CRI-O: systemd driver crio-<id>.scope and crio-conmon-<id>.scope for
//     its conmon monitor; cgroupfs driver crio-<id> and crio-conmon-<id>.
//   - Docker (libcontainer's systemd and fs cgroup managers): systemd
//     /system.slice/docker-<id>.scope, cgroupfs /docker/<id>; as a
//     Kubernetes runtime through cri-dockerd, docker-<id>.scope or the bare
//     <id> under the pod.
//   - Podman: rootful systemd /machine.slice/libpod-<id>.scope, with
//     --cgroups=split or a systemd/init inside the container a further
//     libpod-<id>.scope/container (or /init) leaf, and conmon in
//     libpod-conmon-<id>.scope; rootless
//     /user.slice/user-<uid>.slice/user@<uid>.service/user.slice/libpod-<id>.scope;
//     cgroupfs driver /libpod_parent/libpod-<id>.
func Parse(path string) Identity {
	var id Identity
	parent := ""
	for _, c := range strings.Split(path, "/") {
		if c == "" {
			continue
		}
		if uid, ok := podUID(c, parent); ok {
			id = Identity{PodUID: uid}
		} else if cid, rt, ok := containerComponent(c, parent, id.PodUID != ""); ok {
			id.ContainerID, id.Runtime = cid, rt
		} else if isMonitor(c) {
			// conmon's process keeps the pod UID alone.
			id.ContainerID, id.Runtime = "", ""
		}
		parent = c
	}
	return id
}

// containerComponent recognises one path component that names a
// container. inPod says a kubepods pod component was seen above: there the
// cgroupfs drivers of containerd and cri-dockerd use the bare id.
func containerComponent(c, parent string, inPod bool) (id, runtime string, ok bool) {
	for _, p := range [...]struct{ prefix, runtime string }{
		{"cri-containerd-", RuntimeContainerd},
		{"crio-", RuntimeCRIO},
		{"docker-", RuntimeDocker},
		{"libpod-", RuntimePodman},
	} {
		if rest, found := strings.CutPrefix(c, p.prefix); found {
			rest = strings.TrimSuffix(rest, ".scope")
			if isContainerID(rest) {
				return rest, p.runtime, true
			}
			return "", "", false
		}
	}
	if isContainerID(c) {
		switch {
		case parent == "docker":
			return c, RuntimeDocker, true
		case inPod:
			return c, "", true // containerd or cri-dockerd: the shape does not tell
		}
	}
	return "", "", false
}

// isMonitor tells a runtime's per-container monitor (conmon) apart: it runs
// beside the container, in its own cgroup, and is not the container.
func isMonitor(c string) bool {
	for _, p := range [...]string{"crio-conmon-", "libpod-conmon-"} {
		if rest, ok := strings.CutPrefix(c, p); ok && isContainerID(strings.TrimSuffix(rest, ".scope")) {
			return true
		}
	}
	return false
}

// podUID recognises a kubelet pod component: "pod<uid>" below a kubepods
// component (cgroupfs driver) or "...kubepods...-pod<uid>.slice" (systemd
// driver). A pod inside a pod (nested kubelets, as kind runs them) is the
// inner one.
func podUID(c, parent string) (string, bool) {
	if s, ok := strings.CutSuffix(c, ".slice"); ok {
		i := strings.LastIndex(s, "-pod")
		if i < 0 || !strings.Contains(s[:i], "kubepods") {
			return "", false
		}
		uid := strings.ReplaceAll(s[i+len("-pod"):], "_", "-")
		return uid, isPodUID(uid)
	}
	uid, ok := strings.CutPrefix(c, "pod")
	if !ok || !(parent == "kubepods" || parent == "besteffort" || parent == "burstable") {
		return "", false
	}
	return uid, isPodUID(uid)
}

// isPodUID accepts a dashed UUID (8-4-4-4-12 hex) or the 32 hex digits of a
// static pod's hash.
func isPodUID(s string) bool {
	switch len(s) {
	case 32:
		return isHex(s)
	case 36:
		for i := 0; i < len(s); i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return false
				}
			} else if !isHexDigit(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isContainerID(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// isHexDigit accepts lowercase only: runtimes and kubelet print lowercase,
// and an upper-case run is more likely a name that happens to be hex-ish.
func isHexDigit(b byte) bool { return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' }
