// SPDX-License-Identifier: Apache-2.0

package cgroups

import (
	"strings"
	"testing"
)

const (
	cid  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cid2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	// A pod UID as the API server prints it, and as the systemd driver
	// writes it into a slice name.
	uid        = "1b2c3d4e-5f60-4a1b-9c8d-0123456789ab"
	uidSystemd = "1b2c3d4e_5f60_4a1b_9c8d_0123456789ab"
	// A static pod's UID: kubelet's hash of the manifest.
	staticUID = "6e3f2a1b9c8d7e6f5a4b3c2d1e0f9a8b"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, path string
		want       Identity
	}{
		// Kubernetes, systemd cgroup driver.
		{"containerd systemd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope",
			Identity{cid, uid, RuntimeContainerd}},
		{"containerd systemd besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope",
			Identity{cid, uid, RuntimeContainerd}},
		{"containerd systemd guaranteed",
			"/kubepods.slice/kubepods-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope",
			Identity{cid, uid, RuntimeContainerd}},
		{"containerd systemd static pod",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + staticUID + ".slice/cri-containerd-" + cid + ".scope",
			Identity{cid, staticUID, RuntimeContainerd}},
		{"kind node kubelet.slice root",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope",
			Identity{cid, uid, RuntimeContainerd}},
		{"cri-o systemd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/crio-" + cid + ".scope",
			Identity{cid, uid, RuntimeCRIO}},
		{"cri-o systemd conmon keeps the pod only",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/crio-conmon-" + cid + ".scope",
			Identity{PodUID: uid}},
		{"cri-o systemd container's own sub-cgroup",
			"/kubepods.slice/kubepods-pod" + uidSystemd + ".slice/crio-" + cid + ".scope/container",
			Identity{cid, uid, RuntimeCRIO}},
		{"cri-dockerd systemd",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSystemd + ".slice/docker-" + cid + ".scope",
			Identity{cid, uid, RuntimeDocker}},

		// Kubernetes, cgroupfs driver.
		{"containerd cgroupfs burstable",
			"/kubepods/burstable/pod" + uid + "/" + cid,
			Identity{cid, uid, ""}},
		{"containerd cgroupfs besteffort",
			"/kubepods/besteffort/pod" + uid + "/" + cid,
			Identity{cid, uid, ""}},
		{"containerd cgroupfs guaranteed",
			"/kubepods/pod" + uid + "/" + cid,
			Identity{cid, uid, ""}},
		{"cgroupfs static pod",
			"/kubepods/burstable/pod" + staticUID + "/" + cid,
			Identity{cid, staticUID, ""}},
		{"cri-o cgroupfs",
			"/kubepods/burstable/pod" + uid + "/crio-" + cid,
			Identity{cid, uid, RuntimeCRIO}},
		{"cri-o cgroupfs conmon",
			"/kubepods/burstable/pod" + uid + "/crio-conmon-" + cid,
			Identity{PodUID: uid}},
		{"kubelet --cgroup-root under cgroupfs",
			"/kubelet/kubepods/besteffort/pod" + uid + "/" + cid,
			Identity{cid, uid, ""}},
		{"pod cgroup itself",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice",
			Identity{PodUID: uid}},

		{"kind node in docker, host view",
			"/system.slice/docker-" + cid2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope",
			Identity{cid, uid, RuntimeContainerd}},
		{"kind node's own service",
			"/system.slice/docker-" + cid2 + ".scope/system.slice/containerd.service",
			Identity{cid2, "", RuntimeDocker}},
		{"cgroupfs kubelet in a docker node",
			"/docker/" + cid2 + "/kubepods/burstable/pod" + uid + "/" + cid,
			Identity{cid, uid, ""}},

		// Docker.
		{"docker cgroupfs", "/docker/" + cid, Identity{cid, "", RuntimeDocker}},
		{"docker systemd", "/system.slice/docker-" + cid + ".scope", Identity{cid, "", RuntimeDocker}},
		{"docker cgroup namespace init", "/system.slice/docker-" + cid + ".scope/init", Identity{cid, "", RuntimeDocker}},
		{"docker in docker", "/docker/" + cid + "/docker/" + cid2, Identity{cid2, "", RuntimeDocker}},
		{"docker rootless",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/docker-" + cid + ".scope",
			Identity{cid, "", RuntimeDocker}},
		{"systemd inside a docker container",
			"/system.slice/docker-" + cid + ".scope/system.slice/nginx.service",
			Identity{cid, "", RuntimeDocker}},

		// Podman.
		{"podman rootful", "/machine.slice/libpod-" + cid + ".scope", Identity{cid, "", RuntimePodman}},
		{"podman split cgroups", "/machine.slice/libpod-" + cid + ".scope/container", Identity{cid, "", RuntimePodman}},
		{"podman inner init", "/machine.slice/libpod-" + cid + ".scope/init", Identity{cid, "", RuntimePodman}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + cid + ".scope", Identity{}},
		{"podman rootless",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope",
			Identity{cid, "", RuntimePodman}},
		{"podman rootless conmon",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-" + cid + ".scope",
			Identity{}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + cid, Identity{cid, "", RuntimePodman}},
		{"podman pod via machine.slice",
			"/machine.slice/machine-libpod_pod_" + cid2 + ".slice/libpod-" + cid + ".scope/container",
			Identity{cid, "", RuntimePodman}},

		// Not containers.
		{"root", "/", Identity{}},
		{"empty", "", Identity{}},
		{"host service", "/system.slice/sshd.service", Identity{}},
		{"docker daemon", "/system.slice/docker.service", Identity{}},
		{"containerd daemon", "/system.slice/containerd.service", Identity{}},
		{"login session", "/user.slice/user-1000.slice/session-2.scope", Identity{}},
		{"kubepods qos slice", "/kubepods.slice/kubepods-burstable.slice", Identity{}},
		{"short id", "/docker/0123456789ab", Identity{}},
		{"upper-case id", "/docker/" + strings.ToUpper(cid), Identity{}},
		{"bare id outside a pod or docker", "/system.slice/" + cid, Identity{}},
		{"pod dir outside kubepods", "/foo/pod" + uid + "/" + cid, Identity{}},
		{"bad pod uid", "/kubepods/burstable/podnot-a-uid/" + cid, Identity{}},
		{"65 hex", "/docker/" + cid + "0", Identity{}},
	} {
		if got := Parse(c.path); got != c.want {
			t.Errorf("%s: Parse(%q) = %+v, want %+v", c.name, c.path, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope",
		"/kubepods/besteffort/pod" + uid + "/" + cid,
		"/machine.slice/libpod-" + cid + ".scope/container",
		"/docker/" + cid, "", "/", "//", "-pod.slice", "kubepods-pod.slice", "crio-conmon-.scope",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		id := Parse(path)
		if id.ContainerID != "" && !isContainerID(id.ContainerID) {
			t.Errorf("Parse(%q): container id %q", path, id.ContainerID)
		}
		if id.PodUID != "" && !isPodUID(id.PodUID) {
			t.Errorf("Parse(%q): pod uid %q", path, id.PodUID)
		}
		if id.Runtime != "" && id.ContainerID == "" {
			t.Errorf("Parse(%q): runtime %q without a container", path, id.Runtime)
		}
	})
}

func TestFindMount(t *testing.T) {
	for _, c := range []struct{ mounts, want string }{
		{"cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "/sys/fs/cgroup"},
		{"tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n", "/sys/fs/cgroup/unified"},
		{"cgroup2 /a\\040b/c cgroup2 rw 0 0\ncgroup2 /x cgroup2 rw 0 0\n", "/x"},
		{"cgroup2 /a\\040b cgroup2 rw 0 0\n", "/a b"},
		{"proc /proc proc rw 0 0\n", ""},
	} {
		if got := FindMount(strings.NewReader(c.mounts)); got != c.want {
			t.Errorf("FindMount(%q) = %q, want %q", c.mounts, got, c.want)
		}
	}
}
