// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"cmp"
	"slices"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Metric names one metric the aggregator computes.
type Metric int

const (
	ConnectionIO       Metric = iota // ebpfnet.connection.io
	ConnectionPackets                // ebpfnet.connection.packet.count
	ConnectionOpened                 // ebpfnet.connection.opened
	ConnectionClosed                 // ebpfnet.connection.closed
	ConnectionCount                  // ebpfnet.connection.count (open now)
	ConnectionDuration               // ebpfnet.connection.duration (histogram)
	TCPRTT                           // ebpfnet.tcp.rtt (histogram)
	TCPRTTVariation                  // ebpfnet.tcp.rtt.variation (histogram)
	TCPRetransmits                   // ebpfnet.tcp.retransmit.count
	TCPSynRetransmits                // ebpfnet.tcp.syn_retransmit.count
	TCPFailures                      // ebpfnet.tcp.failure.count
	NumMetrics
)

// IsHistogram reports whether m is one of the histograms.
func (m Metric) IsHistogram() bool {
	return m == ConnectionDuration || m == TCPRTT || m == TCPRTTVariation
}

// MetricConfig says whether a metric is computed and which attributes it keeps.
type MetricConfig struct {
	Enabled bool
	Attrs   AttrSet
}

// Resource is the process and network namespace a series belongs to, with
// what Config.Resolve found about the process.
type Resource struct {
	PID            uint32
	Netns          uint32
	ExecutableName string
	CommandLine    string
	ContainerID    string
	PodUID         string // k8s.pod.uid of the pod the container belongs to
}

// NameFromComm sets ExecutableName to comm, the kernel's task name of the
// owner when it used the connection, if /proc could not tell it: the process
// was gone before it could be read.
func (r *Resource) NameFromComm(comm string) {
	if r.ExecutableName == "" && comm != "" {
		r.ExecutableName = comm
	}
}

// Config sets up an Aggregator.
type Config struct {
	Metrics [NumMetrics]MetricConfig
	// MaxSeries bounds the series of each metric (all resources together).
	// Past it, new series fold into the overflow series. 0 means no bound.
	MaxSeries int
	// SeriesExpiry forgets a series that has not changed for this long and
	// has no open connection. A series that comes back later starts again
	// with a new start timestamp. 0 keeps series forever.
	SeriesExpiry time.Duration
	// PeerGroups replace a peer address with the name of the group holding
	// it (longest-prefix match; a prefix in one group only), so all peers of
	// a group share one series. OtherPeers names the group of every address
	// no group holds; "" keeps those addresses. An unknown peer address stays
	// unknown. Only the metrics are grouped: AttrsOf keeps the address.
	PeerGroups []PeerGroup
	OtherPeers string
	// Resolve fills in a resource the first time the aggregator sees it,
	// from the pid, the netns and the cgroup id the owner had when it took
	// the connection (conns.Conn.CgroupID, 0 when unknown). It may be nil;
	// it is called from Update only.
	Resolve func(pid, netns uint32, cgroupID uint64) Resource
	// PeerName gives server.address (conns.Conn.PeerName's meaning) of a
	// connection the aggregator sees for the first time; the connection
	// keeps it for its life. It may be nil (no names); it is called from
	// Update only.
	PeerName func(c *conns.Conn) string
}

// Stats counts what one Update did.
type Stats struct {
	// Overflowed counts connections folded into an overflow series, once
	// per connection and metric.
	Overflowed uint64
}

type resourceKey struct{ pid, netns uint32 }

type resourceState struct {
	Resource
	series int // series of all metrics under this resource
}

type seriesKey struct {
	res   resourceKey
	attrs Attrs
}

type series struct {
	res     *resourceState // nil for the overflow series
	attrs   Attrs
	start   time.Time
	changed time.Time // last time the value changed (or had open connections)
	value   int64
	hist    *histogram
}

// connState is what the aggregator remembers of an open connection between
// polls: the counters it reported last, to turn cumulative counters into deltas.
type connState struct {
	sentBytes, recvBytes     uint64
	sentPackets, recvPackets uint64
	retransmits              uint32
	synRetransmits           uint8
	gen                      uint64           // last Update that saw the connection
	overflowed               [NumMetrics]bool // counted in Stats.Overflowed already
	// peerName is server.address, asked of Config.PeerName once, when the
	// connection is first seen, and kept for its life.
	peerName string
}

// Aggregator turns snapshots into cumulative series. It is not safe for
// concurrent use.
type Aggregator struct {
	cfg       Config
	peers     *peerMatcher // nil without peer groups
	comm      string       // task name of the connection being observed (see seriesFor)
	cgroupID  uint64       // and its owner's cgroup id
	conns     map[conns.ID]*connState
	resources map[resourceKey]*resourceState
	series    [NumMetrics]map[seriesKey]*series
	overflow  [NumMetrics]*series
	gen       uint64
	prevPoll  time.Time
	now       time.Time
	stats     Stats
}

// New returns an Aggregator whose first series start at start (normally when
// the tracer started: nothing before it was counted).
func New(cfg Config, start time.Time) *Aggregator {
	a := &Aggregator{
		cfg:       cfg,
		peers:     newPeerMatcher(cfg.PeerGroups, cfg.OtherPeers),
		conns:     make(map[conns.ID]*connState),
		resources: make(map[resourceKey]*resourceState),
		prevPoll:  start,
	}
	for m := range a.series {
		a.series[m] = make(map[seriesKey]*series)
	}
	return a
}

// Update adds one poll's snapshot. Active connections contribute what their
// counters grew by since the previous poll; closed ones contribute their
// remainder and are forgotten. It returns what it counted in Stats.
func (a *Aggregator) Update(s conns.Snapshot) Stats {
	a.gen++
	a.now = s.Time
	a.stats = Stats{}
	for _, sr := range a.series[ConnectionCount] {
		sr.value = 0
	}
	for i := range s.Active {
		a.observe(&s.Active[i], false)
	}
	for i := range s.Closed {
		a.observe(&s.Closed[i], true)
	}
	// A connection that vanished without a close record (the tracer lost it
	// and counted that in its telemetry) must not pin memory forever.
	for id, st := range a.conns {
		if st.gen != a.gen {
			delete(a.conns, id)
		}
	}
	a.expire()
	a.prevPoll = a.now
	return a.stats
}

func (a *Aggregator) observe(c *conns.Conn, closed bool) {
	id := c.ID()
	st, known := a.conns[id]
	if !known {
		st = &connState{}
		if !closed {
			a.conns[id] = st
		}
	}
	st.gen = a.gen

	if !known && a.cfg.PeerName != nil {
		st.peerName = a.cfg.PeerName(c)
	}
	base := attrsOf(c)
	base.name = st.peerName
	if a.peers != nil {
		base.groupPeer(a.peers)
	}
	rk := resourceKey{pid: c.PID, netns: c.Netns}
	a.comm, a.cgroupID = c.Comm, c.CgroupID

	tx, rx := base.with(AttrIODirection, uint16(IOTransmit)), base.with(AttrIODirection, uint16(IOReceive))
	a.add(ConnectionIO, st, rk, tx, grown(c.SentBytes, st.sentBytes))
	a.add(ConnectionIO, st, rk, rx, grown(c.RecvBytes, st.recvBytes))
	a.add(ConnectionPackets, st, rk, tx, grown(c.SentPackets, st.sentPackets))
	a.add(ConnectionPackets, st, rk, rx, grown(c.RecvPackets, st.recvPackets))
	if !known {
		a.add(ConnectionOpened, st, rk, base, 1)
	}
	isTCP := c.Transport == conns.TransportTCP
	if isTCP {
		a.add(TCPRetransmits, st, rk, base, grown(uint64(c.TCP.Retransmits), uint64(st.retransmits)))
		a.add(TCPSynRetransmits, st, rk, base, grown(uint64(c.TCP.SynRetransmits), uint64(st.synRetransmits)))
		// One sample per connection and poll, and one at close: a histogram of
		// what the connections' RTT was over their lives, open ones included.
		if c.TCP.RTT > 0 {
			a.observeHist(TCPRTT, st, rk, base, c.TCP.RTT.Seconds())
			a.observeHist(TCPRTTVariation, st, rk, base, c.TCP.RTTVar.Seconds())
		}
	}
	st.sentBytes, st.recvBytes = c.SentBytes, c.RecvBytes
	st.sentPackets, st.recvPackets = c.SentPackets, c.RecvPackets
	st.retransmits, st.synRetransmits = c.TCP.Retransmits, c.TCP.SynRetransmits

	if !closed {
		a.add(ConnectionCount, st, rk, base, 1)
		return
	}
	a.add(ConnectionClosed, st, rk, base, 1)
	a.observeHist(ConnectionDuration, st, rk, base, c.Duration.Seconds())
	if isTCP && c.TCP.Failure() != conns.FailureNone {
		a.add(TCPFailures, st, rk, base, 1) // error.type is in base
	}
	delete(a.conns, id)
}

// grown is how much a cumulative counter grew. Counters of one connection
// only grow; if one ever went back, the tracer restarted it, and the new value
// is all new.
func grown(cur, last uint64) int64 {
	if cur < last {
		return int64(cur)
	}
	return int64(cur - last)
}

// add adds delta to the series of metric m that c (attrs) belongs to. A zero
// delta creates no series, except for the open-connection count, whose series
// exist while connections are open.
func (a *Aggregator) add(m Metric, st *connState, rk resourceKey, attrs Attrs, delta int64) {
	if !a.cfg.Metrics[m].Enabled || (delta == 0 && m != ConnectionCount) {
		return
	}
	sr := a.seriesFor(m, st, rk, attrs)
	sr.value += delta
	sr.changed = a.now
}

func (a *Aggregator) observeHist(m Metric, st *connState, rk resourceKey, attrs Attrs, v float64) {
	if !a.cfg.Metrics[m].Enabled {
		return
	}
	sr := a.seriesFor(m, st, rk, attrs)
	if sr.hist == nil {
		sr.hist = newHistogram(boundsOf(m))
	}
	sr.hist.observe(v)
	sr.changed = a.now
}

// seriesFor finds or creates the series of metric m for attrs under rk, or
// the overflow series when m already has MaxSeries series.
func (a *Aggregator) seriesFor(m Metric, st *connState, rk resourceKey, attrs Attrs) *series {
	key := seriesKey{res: rk, attrs: attrs.project(a.cfg.Metrics[m].Attrs)}
	if sr, ok := a.series[m][key]; ok {
		return sr
	}
	if a.cfg.MaxSeries > 0 && len(a.series[m]) >= a.cfg.MaxSeries {
		if !st.overflowed[m] {
			st.overflowed[m] = true
			a.stats.Overflowed++
		}
		if a.overflow[m] == nil {
			a.overflow[m] = &series{attrs: Attrs{Overflow: true}, start: a.prevPoll}
		}
		return a.overflow[m]
	}
	res := a.resources[rk]
	if res == nil {
		res = &resourceState{Resource: Resource{PID: rk.pid, Netns: rk.netns}}
		if a.cfg.Resolve != nil {
			res.Resource = a.cfg.Resolve(rk.pid, rk.netns, a.cgroupID)
			res.PID, res.Netns = rk.pid, rk.netns
		}
		a.resources[rk] = res
	}
	res.NameFromComm(a.comm)
	res.series++
	// The data of a new series happened after the previous poll: that is
	// when its accumulation starts.
	sr := &series{res: res, attrs: key.attrs, start: a.prevPoll}
	a.series[m][key] = sr
	return sr
}

// expire forgets series idle for longer than SeriesExpiry and resources left
// without series.
func (a *Aggregator) expire() {
	if a.cfg.SeriesExpiry <= 0 {
		return
	}
	for m := range a.series {
		for k, sr := range a.series[m] {
			if Metric(m) == ConnectionCount && sr.value > 0 {
				sr.changed = a.now
				continue
			}
			if a.now.Sub(sr.changed) < a.cfg.SeriesExpiry {
				continue
			}
			delete(a.series[m], k)
			sr.res.series--
			if sr.res.series == 0 {
				delete(a.resources, k.res)
			}
		}
	}
}

// Point is one cumulative sum data point.
type Point struct {
	Attrs Attrs
	Start time.Time
	Value int64
}

// HistogramPoint is one cumulative histogram data point.
type HistogramPoint struct {
	Attrs        Attrs
	Start        time.Time
	Count        uint64
	Sum          float64
	Min, Max     float64
	Bounds       []float64
	BucketCounts []uint64 // len(Bounds)+1
}

// ResourceData holds every point of one resource.
type ResourceData struct {
	Resource Resource
	// Overflow is set on the one resource holding the overflow series; its
	// Resource is zero.
	Overflow   bool
	Sums       [NumMetrics][]Point
	Histograms [NumMetrics][]HistogramPoint
}

// Collect returns the current value of every series, resources ordered by
// process and namespace, series by attributes, the overflow resource last.
// Time is the time of the last Update.
func (a *Aggregator) Collect() []ResourceData {
	byRes := make(map[resourceKey]*ResourceData, len(a.resources))
	for m := range a.series {
		for k, sr := range a.series[m] {
			rd := byRes[k.res]
			if rd == nil {
				rd = &ResourceData{Resource: sr.res.Resource}
				byRes[k.res] = rd
			}
			rd.appendSeries(Metric(m), sr)
		}
	}
	out := make([]ResourceData, 0, len(byRes)+1)
	for _, rd := range byRes {
		for m := range rd.Sums {
			slices.SortFunc(rd.Sums[m], func(x, y Point) int { return compareAttrs(x.Attrs, y.Attrs) })
			slices.SortFunc(rd.Histograms[m], func(x, y HistogramPoint) int { return compareAttrs(x.Attrs, y.Attrs) })
		}
		out = append(out, *rd)
	}
	slices.SortFunc(out, func(x, y ResourceData) int {
		return cmp.Or(cmp.Compare(x.Resource.PID, y.Resource.PID), cmp.Compare(x.Resource.Netns, y.Resource.Netns))
	})
	var ov ResourceData
	ov.Overflow = true
	haveOverflow := false
	for m, sr := range a.overflow {
		if sr != nil {
			ov.appendSeries(Metric(m), sr)
			haveOverflow = true
		}
	}
	if haveOverflow {
		out = append(out, ov)
	}
	return out
}

func (rd *ResourceData) appendSeries(m Metric, sr *series) {
	if m.IsHistogram() {
		if sr.hist != nil {
			rd.Histograms[m] = append(rd.Histograms[m], sr.hist.point(sr.attrs, sr.start))
		}
		return
	}
	rd.Sums[m] = append(rd.Sums[m], Point{Attrs: sr.attrs, Start: sr.start, Value: sr.value})
}

// Len returns the number of open connections and of series the aggregator
// holds (for tests and debugging).
func (a *Aggregator) Len() (connections, series int) {
	for m := range a.series {
		series += len(a.series[m])
	}
	return len(a.conns), series
}
