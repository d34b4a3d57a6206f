// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.yaml.in/yaml/v3"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/cgroups"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// podmanBase is how every podman command of these tests starts. runc because
// crun refuses hybrid cgroup v1+v2 hosts like this machine kind; cgroupfs
// because no systemd runs here. A host with systemd and crun works the same
// way for the collector: only the cgroup path of a container differs, and
// internal/cgroups parses every layout.
var podmanBase = []string{"podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"}

// rlimits: root here lacks CAP_SYS_RESOURCE, so the runtime cannot raise a
// container's limits to its defaults; these lower ones it can set.
var rlimits = []string{"--ulimit", "nofile=1000:2000", "--ulimit", "nproc=1000:2000"}

// TestContainerIdentity: a process in a Podman container (an image built here
// from a static binary, no registry) connects to a server outside it, sends a
// known number of bytes and exits, and its container is removed, before either
// collector polls. Its connection carries container.id equal to Podman's full
// container id, with exactly those bytes, in the output of the collector
// running on the host and of the collector running in its own container with
// the DaemonSet's security settings (deploy/kubernetes): the capabilities, the
// host's pid namespace, the node's cgroup2 root, a read-only root file system,
// no privilege escalation, the network namespace the manifest says (the
// node's).
func TestContainerIdentity(t *testing.T) {
	privtest.Require(t)
	requirePodman(t)
	bin, _ := binaries(t)
	root := repoRoot(t)
	dir := t.TempDir()
	tag := strconv.Itoa(os.Getpid())
	clientImage := "localhost/ebpfnet-test-client:" + tag
	collectorImage := "localhost/ebpfnet-test-collector:" + tag

	// The client image: the static connclient FROM scratch.
	clientCtx := filepath.Join(dir, "client")
	if err := os.MkdirAll(clientCtx, 0o755); err != nil {
		t.Fatal(err)
	}
	goBuild := exec.Command("go", "build", "-o", filepath.Join(clientCtx, "connclient"), "./testdata/connclient")
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	mustRun(t, goBuild)
	writeFile(t, filepath.Join(clientCtx, "Dockerfile"), "FROM scratch\nCOPY connclient /connclient\nENTRYPOINT [\"/connclient\"]\n")
	buildImage(t, clientImage, clientCtx)

	buildCollectorImage(t, collectorImage, bin)

	// Both collectors poll every 15 s, and each client container starts
	// right after both have exported a poll: its whole life, removal
	// included (about 3 s of podman here), fits before their next polls
	// (checked below).
	const interval = 15 * time.Second
	sink := newOTLPSink(t)
	hostCol := startCollector(t, bin, writeConfig(t, otlpConfig(sink.srv.URL, interval)))

	ds := daemonSetSettings(t, filepath.Join(root, "deploy", "kubernetes", "otelcol-ebpfnet.yaml"))
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(conf, "config.yaml"), fileConfig("/out/metrics.jsonl", interval))
	seccomp := filepath.Join(dir, "seccomp.json")
	writeRuntimeDefaultSeccomp(t, seccomp)
	name := "ebpfnet-test-collector-" + tag
	t.Cleanup(func() { _ = exec.Command(podmanBase[0], append(podmanBase[1:], "rm", "-f", "-t", "5", name)...).Run() })
	prefix := append(append([]string{}, podmanBase...), "run", "--rm", "--name", name)
	prefix = append(prefix, ds.podmanFlags(seccomp)...)
	prefix = append(prefix, rlimits...)
	prefix = append(prefix, "-v", conf+":"+ds.configMount+":ro", "-v", out+":/out")
	ctrCol := startCollector(t, collectorImage, ds.configMount+"/config.yaml", prefix...)
	waitStarted(t, hostCol)
	waitStarted(t, ctrCol)
	fileOut := &fileExport{path: filepath.Join(out, "metrics.jsonl")}

	// The server outside the containers: reads each connection to EOF and
	// answers with reply bytes.
	const sent, reply = 54321, 1234
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	got := make(chan int64, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, c)
			_, _ = c.Write(bytes.Repeat([]byte{'s'}, reply))
			c.Close()
			got <- n
		}
	}()

	transmit := map[string]any{"ebpfnet.connection.direction": "outgoing", "network.io.direction": "transmit", "server.port": port}
	receive := map[string]any{"ebpfnet.connection.direction": "outgoing", "network.io.direction": "receive", "server.port": port}
	mnt, err := cgroups.MountPoint()
	if err != nil {
		t.Fatal(err)
	}

	// A poll may still land inside the client's short life: then that run
	// proves less than the test claims, and a new container (a new id) runs.
	var id string
	for attempt := 1; ; attempt++ {
		afterPolls(t, sink, fileOut, 3*interval)
		cidFile := filepath.Join(dir, fmt.Sprintf("cid-%d", attempt))
		run := exec.Command(podmanBase[0], append(podmanBase[1:], append(append([]string{"run", "--rm", "--network", "host", "--cidfile", cidFile}, rlimits...),
			clientImage, ln.Addr().String(), strconv.Itoa(sent))...)...)
		outb, err := run.CombinedOutput()
		if err != nil {
			t.Fatalf("client container: %v: %s", err, outb)
		}
		if strings.TrimSpace(lastLine(outb)) != strconv.Itoa(reply) {
			t.Fatalf("client container read %q, want %d reply bytes", outb, reply)
		}
		if n := <-got; n != sent {
			t.Fatalf("server read %d bytes from the container, want %d", n, sent)
		}
		cid, err := os.ReadFile(cidFile)
		if err != nil {
			t.Fatal(err)
		}
		id = strings.TrimSpace(string(cid))
		if len(id) != 64 {
			t.Fatalf("podman's container id %q is not 64 hex digits", id)
		}
		// The container and its cgroup are gone now (run --rm returned).
		if leftovers := cgroupDirsOf(t, mnt, id); len(leftovers) > 0 {
			t.Fatalf("the container's cgroup is still there after podman run --rm returned: %v", leftovers)
		}
		res := map[string]any{"container.id": id}
		hostSeen, err := sink.latestSums(ioMetric, res, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctrSeen, err := fileOut.latestSums(ioMetric, res, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(hostSeen) == 0 && len(ctrSeen) == 0 {
			t.Logf("attempt %d: container %s ran and was removed before either collector reported it", attempt, id)
			break
		}
		t.Logf("attempt %d: a poll came while container %s ran (host %d, container %d series): again", attempt, id, len(hostSeen), len(ctrSeen))
		if attempt == 5 {
			t.Fatalf("five client containers were each seen by a poll while they ran: the %v interval should leave room", interval)
		}
	}

	res := map[string]any{"container.id": id}
	var last []string
	for deadline := time.Now().Add(3 * interval); ; {
		last = last[:0]
		for _, src := range []struct {
			name string
			sums func(string, map[string]any, map[string]any) ([]sumPoint, error)
		}{{"host collector (OTLP)", sink.latestSums}, {"collector in a container (file exporter)", fileOut.latestSums}} {
			for _, w := range []struct {
				attrs map[string]any
				bytes int64
			}{{transmit, sent}, {receive, reply}} {
				pts, err := src.sums(ioMetric, res, w.attrs)
				if err != nil {
					t.Fatalf("%s: %v", src.name, err)
				}
				if len(pts) != 1 || pts[0].value != w.bytes {
					last = append(last, fmt.Sprintf("%s: %s %v %v: want one series = %d, got %+v", src.name, ioMetric, res, w.attrs, w.bytes, pts))
				}
			}
		}
		if len(last) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's connection did not show up exactly:\n%s", strings.Join(last, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// afterPolls returns once both collectors have exported a poll made after
// the call: the next polls are then most of an interval away.
func afterPolls(t *testing.T, sink *otlpSink, file *fileExport, timeout time.Duration) {
	t.Helper()
	sink0, file0 := sink.exports(), file.exports()
	for deadline := time.Now().Add(timeout); sink.exports() == sink0 || file.exports() == file0; {
		if time.Now().After(deadline) {
			t.Fatalf("no export from both collectors within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exports counts the metrics exports the sink has received.
func (s *otlpSink) exports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// exports counts the complete lines the file exporter has written.
func (f *fileExport) exports() int {
	data, _ := os.ReadFile(f.path)
	return bytes.Count(data, []byte("\n"))
}

// TestContainerSeccompRefusalNamed: the collector in a container with the
// DaemonSet's settings but the seccomp profile of a runtime older than
// containerd 1.7 (Podman's default, which allows bpf(2) only to
// CAP_SYS_ADMIN) exits non-zero, within 10 s, with an error that names the
// seccomp filter as the cause, not the memlock limit.
func TestContainerSeccompRefusalNamed(t *testing.T) {
	privtest.Require(t)
	requirePodman(t)
	bin, _ := binaries(t)
	root := repoRoot(t)
	image := "localhost/ebpfnet-test-collector-seccomp:" + strconv.Itoa(os.Getpid())
	buildCollectorImage(t, image, bin)
	ds := daemonSetSettings(t, filepath.Join(root, "deploy", "kubernetes", "otelcol-ebpfnet.yaml"))
	conf := t.TempDir()
	writeFile(t, filepath.Join(conf, "config.yaml"), fileConfig("/dev/null", time.Second))
	name := "ebpfnet-test-seccomp-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _ = exec.Command(podmanBase[0], append(podmanBase[1:], "rm", "-f", "-t", "1", name)...).Run() })
	prefix := append(append([]string{}, podmanBase...), "run", "--rm", "--name", name)
	prefix = append(prefix, ds.podmanFlags(podmanSeccomp)...)
	prefix = append(prefix, rlimits...)
	prefix = append(prefix, "-v", conf+":"+ds.configMount+":ro")
	col := startCollector(t, image, ds.configMount+"/config.yaml", prefix...)
	if !col.exited(10 * time.Second) {
		t.Fatal("the collector did not exit within 10 s under a seccomp profile that refuses bpf(2)")
	}
	out := col.out.String()
	if col.err == nil {
		t.Fatalf("the collector exited 0 under a seccomp profile that refuses bpf(2):\n%s", out)
	}
	last := lastLine([]byte(out))
	for _, want := range []string{"bpf(2) was refused", "seccomp filter is active", "containerd 1.7"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q does not say %q", last, want)
		}
	}
}

func requirePodman(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			privtest.SkipOrFail(t, fmt.Errorf("the container tests need %s (scripts/ci/deps.sh installs it): %w", tool, err))
		}
	}
}

// buildCollectorImage builds deploy/Dockerfile, on the context `make image`
// lays out, around the collector binary bin.
func buildCollectorImage(t *testing.T, tag, bin string) {
	t.Helper()
	ctx := filepath.Join(t.TempDir(), "collector")
	mustRun(t, exec.Command(filepath.Join(repoRoot(t), "scripts", "image-context.sh"), bin, ctx))
	buildImage(t, tag, ctx)
}

// mustRun runs cmd and fails the test with its output if it fails.
func mustRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildImage builds the context dir into the local image tag, offline, and
// removes the image when the test ends.
func buildImage(t *testing.T, tag, dir string) {
	t.Helper()
	mustRun(t, exec.Command(podmanBase[0], append(podmanBase[1:], "build", "-q", "-t", tag, dir)...))
	t.Cleanup(func() { _ = exec.Command(podmanBase[0], append(podmanBase[1:], "rmi", "-f", tag)...).Run() })
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// cgroupDirsOf lists the cgroup2 directories whose name holds the container
// id (libpod-<id> and its scopes).
func cgroupDirsOf(t *testing.T, mnt, id string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed during the walk
		}
		if d.IsDir() && strings.Contains(d.Name(), id) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// otlpConfig polls every interval and exports over OTLP/HTTP to url.
func otlpConfig(url string, interval time.Duration) string {
	return fmt.Sprintf(`
receivers:
  ebpfnet:
    collection_interval: %s
exporters:
  otlp_http:
    endpoint: %s
service:
  pipelines:
    metrics:
      receivers: [ebpfnet]
      exporters: [otlp_http]
  telemetry:
    metrics:
      level: none
`, interval, url)
}

// fileConfig polls every interval and writes each export as a line of OTLP
// JSON to path, a file the test reads whatever network namespace the
// collector's container has.
func fileConfig(path string, interval time.Duration) string {
	return fmt.Sprintf(`
receivers:
  ebpfnet:
    collection_interval: %s
exporters:
  file:
    path: %s
service:
  pipelines:
    metrics:
      receivers: [ebpfnet]
      exporters: [file]
  telemetry:
    metrics:
      level: none
`, interval, path)
}

// fileExport reads what the file exporter wrote: one OTLP JSON export a line.
type fileExport struct{ path string }

func (f *fileExport) latestSums(metric string, resWant, attrWant map[string]any) ([]sumPoint, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s otlpSink
	var um pmetric.JSONUnmarshaler
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !json.Valid(line) {
			continue // a line the exporter is still writing
		}
		md, err := um.UnmarshalMetrics(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		s.batches = append(s.batches, md)
	}
	return s.latestSums(metric, resWant, attrWant)
}

// daemonSet holds the security settings of the DaemonSet's collector
// container, read from the manifest so that the test runs the collector
// exactly as the manifest says.
type daemonSet struct {
	hostPID, hostNetwork                   bool
	readOnlyRoot, noEscalation, privileged bool
	runAsUser                              *int64
	capDrop, capAdd                        []string
	seccomp                                string
	hostMounts                             []hostMount // hostPath volumes
	configMount                            string      // where the ConfigMap is mounted
}

type hostMount struct {
	host, container string
	readOnly        bool
}

func daemonSetSettings(t *testing.T, path string) daemonSet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type volume struct {
		Name      string                 `yaml:"name"`
		HostPath  *struct{ Path string } `yaml:"hostPath"`
		ConfigMap *struct{ Name string } `yaml:"configMap"`
	}
	type container struct {
		SecurityContext struct {
			Privileged               bool   `yaml:"privileged"`
			AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool   `yaml:"readOnlyRootFilesystem"`
			RunAsUser                *int64 `yaml:"runAsUser"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
			SeccompProfile struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	dec := yaml.NewDecoder(f)
	for {
		var obj struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						HostPID     bool        `yaml:"hostPID"`
						HostNetwork bool        `yaml:"hostNetwork"`
						Containers  []container `yaml:"containers"`
						Volumes     []volume    `yaml:"volumes"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("%s: no DaemonSet: %v", path, err)
		}
		if obj.Kind != "DaemonSet" {
			continue
		}
		pod := obj.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%s: the DaemonSet has %d containers, the test knows one", path, len(pod.Containers))
		}
		c := pod.Containers[0]
		sc := c.SecurityContext
		ds := daemonSet{
			hostPID: pod.HostPID, hostNetwork: pod.HostNetwork,
			readOnlyRoot: sc.ReadOnlyRootFilesystem, privileged: sc.Privileged,
			noEscalation: sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
			runAsUser:    sc.RunAsUser,
			capDrop:      sc.Capabilities.Drop, capAdd: sc.Capabilities.Add,
			seccomp: sc.SeccompProfile.Type,
		}
		vols := map[string]volume{}
		for _, v := range pod.Volumes {
			vols[v.Name] = v
		}
		for _, m := range c.VolumeMounts {
			v, ok := vols[m.Name]
			switch {
			case !ok:
				t.Fatalf("%s: volumeMount %s has no volume", path, m.Name)
			case v.HostPath != nil:
				ds.hostMounts = append(ds.hostMounts, hostMount{v.HostPath.Path, m.MountPath, m.ReadOnly})
			case v.ConfigMap != nil:
				ds.configMount = m.MountPath
			default:
				t.Fatalf("%s: volume %s is of a kind the test does not know", path, m.Name)
			}
		}
		if ds.configMount == "" || ds.seccomp != "RuntimeDefault" || ds.privileged {
			t.Fatalf("%s: the test knows a DaemonSet with a ConfigMap mount, RuntimeDefault seccomp and privileged false: %+v", path, ds)
		}
		return ds
	}
}

// podmanFlags are the podman run flags that give the container the
// DaemonSet's settings; seccomp is the RuntimeDefault profile's file.
func (ds daemonSet) podmanFlags(seccomp string) []string {
	var f []string
	if ds.hostPID {
		f = append(f, "--pid=host")
	}
	if ds.hostNetwork {
		f = append(f, "--network=host")
	} else {
		f = append(f, "--network=none") // a namespace of its own; nothing to reach
	}
	if ds.readOnlyRoot {
		f = append(f, "--read-only")
	}
	if ds.noEscalation {
		f = append(f, "--security-opt", "no-new-privileges")
	}
	if ds.runAsUser != nil {
		f = append(f, "--user", strconv.FormatInt(*ds.runAsUser, 10))
	}
	for _, c := range ds.capDrop {
		f = append(f, "--cap-drop="+c)
	}
	for _, c := range ds.capAdd {
		f = append(f, "--cap-add="+c)
	}
	f = append(f, "--security-opt", "seccomp="+seccomp)
	// A pod has a cgroup namespace of its own on cgroup v2 nodes (containerd,
	// CRI-O): the collector sees the node's hierarchy only through the
	// hostPath mount.
	f = append(f, "--cgroupns=private")
	for _, m := range ds.hostMounts {
		v := m.host + ":" + m.container
		if m.readOnly {
			v += ":ro"
		}
		f = append(f, "-v", v)
	}
	return f
}

// podmanSeccomp is the default profile Podman's containers-common ships.
const podmanSeccomp = "/usr/share/containers/seccomp.json"

// writeRuntimeDefaultSeccomp writes the RuntimeDefault profile the DaemonSet
// asks for, as containerd 1.7+ and CRI-O define it: Podman's default profile,
// in which bpf(2) and perf_event_open(2) are allowed only with CAP_SYS_ADMIN
// (as in containerd before 1.7), with both allowed to CAP_BPF and CAP_PERFMON
// instead. Everything else the profile refuses stays refused.
func writeRuntimeDefaultSeccomp(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(podmanSeccomp)
	if err != nil {
		t.Fatalf("Podman's default seccomp profile: %v", err)
	}
	var prof map[string]any
	if err := json.Unmarshal(data, &prof); err != nil {
		t.Fatalf("%s: %v", podmanSeccomp, err)
	}
	rules, _ := prof["syscalls"].([]any)
	gated := map[string]string{"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}
	refusedWithout := 0
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		excl, _ := rule["excludes"].(map[string]any)
		caps, _ := excl["caps"].([]any)
		if rule["action"] != "SCMP_ACT_ERRNO" || len(caps) != 1 || caps[0] != "CAP_SYS_ADMIN" {
			continue
		}
		names, _ := rule["names"].([]any)
		kept := names[:0]
		for _, n := range names {
			if _, ok := gated[n.(string)]; ok {
				refusedWithout++
				continue
			}
			kept = append(kept, n)
		}
		rule["names"] = kept
	}
	if refusedWithout != len(gated) {
		t.Fatalf("%s: expected bpf and perf_event_open refused without CAP_SYS_ADMIN; the profile changed, and this test with it", podmanSeccomp)
	}
	for call, capName := range gated {
		rules = append(rules, map[string]any{"names": []string{call}, "action": "SCMP_ACT_ALLOW", "includes": map[string]any{"caps": []string{capName}}})
	}
	prof["syscalls"] = rules
	out, err := json.Marshal(prof)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(out))
}
