// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadatatest"
)

// TCP states (bits of TCPStats.StateTransitions) and errnos of the fakes.
const (
	stSynSent, stEstablished, stClose = 1 << 2, 1 << 1, 1 << 7
	errECONNREFUSED, errETIMEDOUT     = 111, 110
	errECONNRESET                     = 104
)

func failed(c conns.Conn, d time.Duration, syn uint8, transitions, errno uint16) conns.Conn {
	c.TCP = conns.TCPStats{SynRetransmits: syn, StateTransitions: transitions, FailureReason: errno}
	c.Duration = d
	return c
}

// logsCore is a core with a metrics scraper (started) and a logs consumer,
// as a metrics and a logs pipeline of one receiver ID make it.
func logsCore(t *testing.T, cfg *Config, src conns.Source, set receiver.Settings) (*ebpfnetScraper, *consumertest.LogsSink) {
	t.Helper()
	reg := newRegistry(func(*Config, *zap.Logger) (conns.Source, error) { return src, nil },
		func(*Config) resourceResolver { return fakeResolver{} })
	reg.now = func() time.Time { return t0 }
	s := attachScraper(t, reg, cfg, set)
	sink := new(consumertest.LogsSink)
	if err := s.core.attachLogs(set, sink); err != nil {
		t.Fatal(err)
	}
	if err := s.start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.shutdown(context.Background()) })
	return s, sink
}

// record is one log record flattened for comparison.
type record struct {
	resource  map[string]any
	attrs     map[string]any
	body      string
	severity  plog.SeverityNumber
	sevText   string
	timestamp time.Time
	observed  time.Time
}

func records(sink *consumertest.LogsSink) []record {
	var out []record
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			sl := rl.ScopeLogs().At(0)
			if sl.Scope().Name() != metadata.ScopeName || rl.SchemaUrl() == "" {
				panic("scope " + sl.Scope().Name() + ", schema " + rl.SchemaUrl())
			}
			for j := 0; j < sl.LogRecords().Len(); j++ {
				lr := sl.LogRecords().At(j)
				out = append(out, record{
					resource: rl.Resource().Attributes().AsRaw(), attrs: lr.Attributes().AsRaw(),
					body: lr.Body().Str(), severity: lr.SeverityNumber(), sevText: lr.SeverityText(),
					timestamp: lr.Timestamp().AsTime(), observed: lr.ObservedTimestamp().AsTime(),
				})
			}
		}
	}
	return out
}

// TestFailureLogRecords: a refused connect, a timed-out connect, a reset of
// an established connection and a clean close give exactly three records,
// one per failure, with the process as resource and the connection as
// attributes; the clean close gives none.
func TestFailureLogRecords(t *testing.T) {
	refused := failed(tcp(100, hostNetns, "10.0.0.1:50002", "10.0.0.9:80", conns.DirectionOutgoing, 3), time.Millisecond, 0, stSynSent|stClose, errECONNREFUSED)
	clean := failed(tcp(100, hostNetns, "10.0.0.1:50001", "10.0.0.2:443", conns.DirectionOutgoing, 2), time.Second, 0, stSynSent|stEstablished|stClose, 0)
	reset := failed(tcp(200, containerNetns, "172.17.0.2:41000", "172.17.0.3:5432", conns.DirectionOutgoing, 5), 2*time.Second, 1, stSynSent|stEstablished|stClose, errECONNRESET)
	reset.Stack.Application = conns.AppPostgres
	timedOut := failed(tcp(100, hostNetns, "[2001:db8::1]:50003", "[2001:db8::9]:80", conns.DirectionOutgoing, 4), 7*time.Second, 2, stSynSent|stClose, errETIMEDOUT)
	poll := t0.Add(10 * time.Second)
	src := &fakeSource{polls: []conns.Snapshot{{Time: poll, Closed: []conns.Conn{refused, clean, reset, timedOut}}}}
	s, sink := logsCore(t, createDefaultConfig(), src, receivertest.NewNopSettings(metadata.Type))
	scrapeAll(t, s, 1)

	curl := map[string]any{"process.pid": int64(100), "process.executable.name": "curl", "ebpfnet.netns.inode": int64(hostNetns)}
	nginx := map[string]any{
		"process.pid": int64(200), "process.executable.name": "nginx", "ebpfnet.netns.inode": int64(containerNetns),
		"container.id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	}
	want := []record{
		{
			resource: curl, body: "tcp connect to 10.0.0.9:80 failed: refused", timestamp: t0.Add(time.Millisecond),
			attrs: map[string]any{
				"network.transport": "tcp", "network.type": "ipv4", "ebpfnet.connection.direction": "outgoing",
				"network.local.address": "10.0.0.1", "network.local.port": int64(50002),
				"network.peer.address": "10.0.0.9", "network.peer.port": int64(80),
				"error.type": "refused", "ebpfnet.tcp.syn_attempts": int64(1),
			},
		},
		{
			resource: curl, body: "tcp connect to [2001:db8::9]:80 failed: timed_out", timestamp: t0.Add(7 * time.Second),
			attrs: map[string]any{
				"network.transport": "tcp", "network.type": "ipv6", "ebpfnet.connection.direction": "outgoing",
				"network.local.address": "2001:db8::1", "network.local.port": int64(50003),
				"network.peer.address": "2001:db8::9", "network.peer.port": int64(80),
				"error.type": "timed_out", "ebpfnet.tcp.syn_attempts": int64(3),
			},
		},
		{
			resource: nginx, body: "tcp connection to 172.17.0.3:5432 failed: reset", timestamp: t0.Add(2 * time.Second),
			attrs: map[string]any{
				"network.transport": "tcp", "network.type": "ipv4", "ebpfnet.connection.direction": "outgoing",
				"network.local.address": "172.17.0.2", "network.local.port": int64(41000),
				"network.peer.address": "172.17.0.3", "network.peer.port": int64(5432),
				"network.protocol.name": "postgresql",
				"error.type":            "reset", "ebpfnet.tcp.syn_attempts": int64(2),
			},
		},
	}
	for i := range want {
		want[i].severity, want[i].sevText, want[i].observed = plog.SeverityNumberWarn, "WARN", poll
	}
	got := records(sink)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records:\n got %+v\nwant %+v", got, want)
	}
	if n := sink.AllLogs()[0].ResourceLogs().Len(); n != 2 {
		t.Errorf("%d resources, want 2 (one per process)", n)
	}
}

// TestFailureBodies: a failed handshake is a connect, a failure after it a
// connection, said from the local end.
func TestFailureBodies(t *testing.T) {
	in := failed(tcp(300, hostNetns, "10.0.0.1:5432", "10.0.0.7:41001", conns.DirectionIncoming, 1), 0, 0, stEstablished|stClose, errECONNRESET)
	unknown := failed(tcp(300, hostNetns, "10.0.0.1:5432", "[::ffff:10.0.0.8]:41002", conns.DirectionUnknown, 2), 0, 0, 0, errECONNRESET)
	canceled := failed(tcp(300, hostNetns, "10.0.0.1:41003", "10.0.0.9:80", conns.DirectionOutgoing, 3), 0, 0, stSynSent|stClose, 0)
	for c, want := range map[*conns.Conn]string{
		&in:       "tcp connection from 10.0.0.7:41001 failed: reset",
		&unknown:  "tcp connection with 10.0.0.8:41002 failed: reset",
		&canceled: "tcp connect to 10.0.0.9:80 failed: canceled",
	} {
		if got := failureBody(c); got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	}
	// A connection established before the tracer started has no handshake
	// the tracer saw: no SYN attempts.
	lr := plog.NewLogRecord()
	writeFailure(lr, &unknown, 0)
	if _, ok := lr.Attributes().Get(attrSynAttempts); ok {
		t.Errorf("syn attempts written for a handshake the tracer did not see: %v", lr.Attributes().AsRaw())
	}
}

// manyRefused returns n refused connects of process 100 from ports from on.
func manyRefused(n, from int) []conns.Conn {
	out := make([]conns.Conn, n)
	for i := range out {
		local := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(from+i))
		out[i] = failed(tcp(100, hostNetns, local.String(), "10.0.0.9:80", conns.DirectionOutgoing, uint64(from+i)), time.Millisecond, 0, stSynSent|stClose, errECONNREFUSED)
	}
	return out
}

// TestFailureLogsRateBound: 250 failures in one poll at 100 a second give
// the burst of 100 records and 150 dropped, counted; half a second later the
// bucket has earned 50 records, and 100 more failures give 50 records and 50
// more dropped.
func TestFailureLogsRateBound(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	src := &fakeSource{polls: []conns.Snapshot{
		{Time: t0.Add(10 * time.Second), Closed: manyRefused(250, 20000)},
		{Time: t0.Add(10*time.Second + 500*time.Millisecond), Closed: manyRefused(100, 30000)},
	}}
	s, sink := logsCore(t, createDefaultConfig(), src, metadatatest.NewSettings(tt))
	opt := metricdatatest.IgnoreTimestamp()

	scrapeAll(t, s, 1)
	if n := sink.LogRecordCount(); n != 100 {
		t.Fatalf("first poll: %d records, want 100", n)
	}
	metadatatest.AssertEqualEbpfnetFailureLogsDropped(t, tt, []metricdata.DataPoint[int64]{{Value: 150}}, opt)
	// The records kept are the first 100 of the poll.
	got := records(sink)
	if got[0].attrs["network.local.port"] != int64(20000) || got[99].attrs["network.local.port"] != int64(20099) {
		t.Errorf("kept ports %v..%v, want 20000..20099", got[0].attrs["network.local.port"], got[99].attrs["network.local.port"])
	}

	scrapeAll(t, s, 1)
	if n := sink.LogRecordCount(); n != 150 {
		t.Fatalf("second poll: %d records in all, want 150", n)
	}
	metadatatest.AssertEqualEbpfnetFailureLogsDropped(t, tt, []metricdata.DataPoint[int64]{{Value: 200}}, opt)
	// The records sent are the standard receiver telemetry's.
	m, err := tt.GetMetric("otelcol_receiver_accepted_log_records")
	if err != nil {
		t.Fatal(err)
	}
	if sum, ok := m.Data.(metricdata.Sum[int64]); !ok || len(sum.DataPoints) != 1 || sum.DataPoints[0].Value != 150 {
		t.Errorf("otelcol_receiver_accepted_log_records: %+v, want 150", m.Data)
	}
}

// TestTokenBucket: the bucket holds at most a second's worth, and time that
// goes backwards earns nothing.
func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(10)
	take := func(n int) int {
		got := 0
		for range n {
			if b.take() {
				got++
			}
		}
		return got
	}
	b.refill(t0)
	if got := take(20); got != 10 {
		t.Fatalf("burst %d, want 10", got)
	}
	b.refill(t0.Add(time.Hour))
	if got := take(20); got != 10 {
		t.Fatalf("after an hour %d, want 10 (the bucket's size)", got)
	}
	b.refill(t0) // backwards
	if got := take(1); got != 0 {
		t.Fatalf("time went backwards and the bucket refilled")
	}
	b.refill(t0.Add(time.Hour + 300*time.Millisecond))
	if got := take(20); got != 3 {
		t.Fatalf("after 300ms %d, want 3", got)
	}
}

// countingSource counts the sources made and the closes, concurrency-safe:
// the controller's and the logs receiver's goroutines poll it.
type countingSource struct {
	mu      sync.Mutex
	made    int
	closed  int
	polls   int
	failErr error // newSource fails with it once when set
	snap    conns.Snapshot
}

func (c *countingSource) factory(*Config, *zap.Logger) (conns.Source, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failErr != nil {
		err := c.failErr
		c.failErr = nil
		return nil, err
	}
	c.made++
	return c, nil
}

// Poll returns snap once, then empty snapshots.
func (c *countingSource) Poll(context.Context) (conns.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.polls++
	s := c.snap
	c.snap = conns.Snapshot{}
	return s, nil
}

func (c *countingSource) Telemetry() conns.Telemetry { return conns.Telemetry{} }

func (c *countingSource) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return nil
}

func (c *countingSource) counts() (made, closed, polls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made, c.closed, c.polls
}

func fastConfig() *Config {
	cfg := createDefaultConfig()
	cfg.CollectionInterval = 10 * time.Millisecond
	cfg.InitialDelay = 0
	return cfg
}

func waitRecords(t *testing.T, sink *consumertest.LogsSink, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sink.LogRecordCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d log records after 10s, want %d", sink.LogRecordCount(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func oneRefused() conns.Snapshot {
	return conns.Snapshot{Time: t0.Add(time.Second), Closed: manyRefused(1, 40000)}
}

// TestMetricsAndLogsShareOneTracer: the metrics and the logs receiver of one
// ID load one tracer, the metrics scrape hands the failures to the logs
// consumer, the last Shutdown closes the tracer once, and the registry forgets
// the ID.
func TestMetricsAndLogsShareOneTracer(t *testing.T) {
	for _, logsFirst := range []bool{false, true} {
		src := &countingSource{snap: oneRefused()}
		reg := newRegistry(src.factory, func(*Config) resourceResolver { return fakeResolver{} })
		f := newFactory(reg)
		set := receivertest.NewNopSettings(metadata.Type)
		cfg := fastConfig()
		sink := new(consumertest.LogsSink)
		mr, err := f.CreateMetrics(context.Background(), set, cfg, new(consumertest.MetricsSink))
		if err != nil {
			t.Fatal(err)
		}
		lr, err := f.CreateLogs(context.Background(), set, cfg, sink)
		if err != nil {
			t.Fatal(err)
		}
		order := []component.Component{mr, lr}
		if logsFirst {
			order = []component.Component{lr, mr}
		}
		for _, c := range order {
			if err := c.Start(context.Background(), componenttest.NewNopHost()); err != nil {
				t.Fatal(err)
			}
		}
		waitRecords(t, sink, 1)
		if lr.(*logsReceiver).cancel != nil {
			t.Error("the logs receiver polls beside a metrics receiver")
		}
		for _, c := range order {
			for range 2 {
				if err := c.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if made, closed, _ := src.counts(); made != 1 || closed != 1 {
			t.Errorf("logs first %v: %d tracers made, %d closed; want 1 and 1", logsFirst, made, closed)
		}
		if n := sink.LogRecordCount(); n != 1 {
			t.Errorf("logs first %v: %d records, want 1", logsFirst, n)
		}
		if len(reg.cores) != 0 {
			t.Errorf("registry keeps %d cores after both shut down", len(reg.cores))
		}
	}
}

// TestLogsAlonePollItself: without a metrics receiver, the logs receiver
// polls every collection_interval and stops on Shutdown.
func TestLogsAlonePollItself(t *testing.T) {
	src := &countingSource{snap: oneRefused()}
	reg := newRegistry(src.factory, func(*Config) resourceResolver { return fakeResolver{} })
	sink := new(consumertest.LogsSink)
	lr, err := newFactory(reg).CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), fastConfig(), sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := lr.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, sink, 1)
	for range 2 {
		if err := lr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	made, closed, polls := src.counts()
	if made != 1 || closed != 1 || polls == 0 {
		t.Errorf("%d tracers made, %d closed, %d polls; want 1, 1, some", made, closed, polls)
	}
	time.Sleep(30 * time.Millisecond)
	if _, _, after := src.counts(); after != polls {
		t.Errorf("polled %d times after Shutdown", after-polls)
	}
	if sink.LogRecordCount() != 1 || len(reg.cores) != 0 {
		t.Errorf("%d records (want 1), %d cores left (want 0)", sink.LogRecordCount(), len(reg.cores))
	}
}

// TestLogsDisabledLoadNoTracer: failure_logs::max_per_second 0 turns the
// logs off, and a logs receiver alone loads no tracer.
func TestLogsDisabledLoadNoTracer(t *testing.T) {
	src := &countingSource{snap: oneRefused()}
	reg := newRegistry(src.factory, func(*Config) resourceResolver { return fakeResolver{} })
	cfg := fastConfig()
	cfg.FailureLogs.MaxPerSecond = 0
	lr, err := newFactory(reg).CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := lr.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := lr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if made, _, _ := src.counts(); made != 0 {
		t.Errorf("%d tracers loaded for disabled failure logs", made)
	}
}

// TestLogsStartErrorLeavesNothing: a tracer that cannot load fails Start with
// its error; nothing is held, so Shutdown closes nothing and a later Start
// loads the tracer afresh.
func TestLogsStartErrorLeavesNothing(t *testing.T) {
	missing := errors.New("tracer: missing capability CAP_BPF")
	src := &countingSource{failErr: missing}
	reg := newRegistry(src.factory, func(*Config) resourceResolver { return fakeResolver{} })
	f := newFactory(reg)
	set := receivertest.NewNopSettings(metadata.Type)
	cfg := fastConfig()
	lr, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := lr.Start(context.Background(), componenttest.NewNopHost()); !errors.Is(err, missing) {
		t.Fatalf("start: want the tracer's error wrapped, got %v", err)
	}
	if err := lr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if made, closed, _ := src.counts(); made != 0 || closed != 0 || len(reg.cores) != 0 {
		t.Fatalf("after a failed start: %d made, %d closed, %d cores", made, closed, len(reg.cores))
	}
	lr, err = f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := lr.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := lr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if made, closed, _ := src.counts(); made != 1 || closed != 1 {
		t.Fatalf("retry: %d made, %d closed; want 1 and 1", made, closed)
	}
}
