// SPDX-License-Identifier: Apache-2.0

//go:build linux

package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ctnetlink, the conntrack part of nfnetlink (include/uapi/linux/netfilter/
// nfnetlink_conntrack.h). Written here rather than taken from a library: the
// receiver needs only the tuples of NEW and DESTROY, decoded without an
// allocation per attribute at tens of thousands of events a second, and the
// socket itself for its drop counter (SO_MEMINFO).
const (
	ctMsgNew    = unix.NFNL_SUBSYS_CTNETLINK<<8 | 0 // IPCTNL_MSG_CT_NEW: an entry (event or dump)
	ctMsgGet    = unix.NFNL_SUBSYS_CTNETLINK<<8 | 1 // IPCTNL_MSG_CT_GET: the dump request
	ctMsgDelete = unix.NFNL_SUBSYS_CTNETLINK<<8 | 2 // IPCTNL_MSG_CT_DELETE: a DESTROY event

	// Multicast groups (NF_NETLINK_CONNTRACK_*): NEW carries the reply
	// tuple with the translation decided; UPDATE would add nothing to it.
	groupNew     = 1
	groupDestroy = 4

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER

	// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the socket's drop
	// counter in SO_MEMINFO's array (Linux 4.12).
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// rcvBuf is the event socket's receive buffer. An event costs about 1 KiB
// of it (the skb's truesize), so 32 MiB hold over a second of 20,000 new
// connections/s (NEW and DESTROY) while the reader is descheduled. A
// variable so a test can make it overflow.
var rcvBuf = 32 << 20

// natOnlyFilter is a classic BPF socket filter that keeps, of the events,
// those of translated entries: their CTA_STATUS has IPS_SRC_NAT or
// IPS_DST_NAT, which the kernel sets when NAT changed the tuple. The table
// keeps nothing else, and on a node most flows may not be translated: the
// others are dropped before they wake the reader (the kernel does not count
// them as socket drops). Anything the filter is not sure of is kept: a
// status not among the first attributes, an attribute of 256 bytes or more,
// a short message.
//
// The kernel's SKF_AD_NLATTR search would be shorter but finds nothing in
// these messages on Linux 6.18; the walk is unrolled instead (classic BPF
// has no loops). Netlink attribute headers are host-endian and classic BPF
// loads big-endian, so lengths and types are read a byte at a time:
// little-endian hosts only (x86, arm64), which is what the receiver runs on.
var natOnlyFilter = func() unix.SockFprog {
	const (
		attrsOff   = unix.NLMSG_HDRLEN + 4 // nlmsghdr, nfgenmsg
		ctaStatus  = 3
		ipsNATMask = 1<<4 | 1<<5 // IPS_SRC_NAT | IPS_DST_NAT
		// The kernel writes the status after the two tuples, the zone
		// and the id: 6 attributes are plenty.
		maxAttrs = 6
	)
	type ins = unix.SockFilter
	const keepLabel, foundLabel = 0xfe, 0xff // patched below
	prog := []ins{{Code: unix.BPF_LDX | unix.BPF_W | unix.BPF_IMM, K: attrsOff}}
	for range maxAttrs {
		prog = append(prog,
			ins{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_LEN},
			ins{Code: unix.BPF_ALU | unix.BPF_SUB | unix.BPF_X},                             // bytes left from X
			ins{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: 8, Jt: 0, Jf: keepLabel}, // a header and a u32
			ins{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND, K: 2},                        // type, low byte
			ins{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: ctaStatus, Jt: foundLabel, Jf: 0},
			ins{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND, K: 1}, // length, high byte
			ins{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0, Jt: 0, Jf: keepLabel},
			ins{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND, K: 0}, // length, low byte
			ins{Code: unix.BPF_ALU | unix.BPF_ADD | unix.BPF_K, K: 3},
			ins{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0xfc}, // NLA_ALIGN
			ins{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0, Jt: keepLabel, Jf: 0},
			ins{Code: unix.BPF_ALU | unix.BPF_ADD | unix.BPF_X},
			ins{Code: unix.BPF_MISC | unix.BPF_TAX}, // the next attribute
		)
	}
	prog = append(prog,
		ins{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},      // not found in maxAttrs: keep
		ins{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_IND, K: 4}, // found: the status, big-endian as loaded
		ins{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, K: ipsNATMask, Jt: 1, Jf: 0},
		ins{Code: unix.BPF_RET | unix.BPF_K, K: 0},
		ins{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
	)
	keep, found := len(prog)-1, len(prog)-4
	for i := range prog {
		for _, j := range []*uint8{&prog[i].Jt, &prog[i].Jf} {
			switch *j {
			case keepLabel:
				*j = uint8(keep - i - 1)
			case foundLabel:
				*j = uint8(found - i - 1)
			}
		}
	}
	return unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
}()

// littleEndian: natOnlyFilter reads little-endian attribute headers.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// errNoConntrack: the kernel has no ctnetlink (no conntrack, or nfnetlink
// without it).
var errNoConntrack = errors.New("kernel has no conntrack netlink (nf_conntrack_netlink)")

// nlSocket is one NETLINK_NETFILTER socket, made pollable so that a reader
// blocked in recv returns when it is closed.
type nlSocket struct {
	f  *os.File
	rc syscall.RawConn
}

// newNLSocket opens a netfilter netlink socket in the calling thread's
// network namespace, subscribed to groups (0: none).
func newNLSocket(groups uint32) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("netlink netfilter socket: %w: %w", errNoConntrack, err)
		}
		return nil, fmt.Errorf("netlink netfilter socket: %w", err)
	}
	if groups != 0 {
		// FORCE passes net.core.rmem_max with CAP_NET_ADMIN, which reading
		// conntrack needs anyway; without it the plain option is capped.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
		}
	}
	if groups != 0 && littleEndian {
		// Best effort: without the filter every event is read, which
		// costs CPU but loses nothing.
		_ = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &natOnlyFilter)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			err = fmt.Errorf("%w: %w", errNoConntrack, err)
		}
		return nil, fmt.Errorf("bind conntrack groups: %w", err)
	}
	f := os.NewFile(uintptr(fd), "conntrack")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &nlSocket{f: f, rc: rc}, nil
}

func (s *nlSocket) Close() error { return s.f.Close() }

// recv reads one datagram into buf, waiting in the runtime's poller.
func (s *nlSocket) recv(buf []byte) (int, error) {
	var n int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// batch is what recvBatch reads into: several datagrams per system call,
// as each conntrack event is a datagram of its own.
type batch struct {
	hdrs []mmsghdr
	bufs [][]byte
	iovs []unix.Iovec
}

// mmsghdr is struct mmsghdr (Go pads it to its alignment as C does).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchBufSize holds any conntrack event (the largest, with helper, labels
// and security context, stay under 1 KiB); a longer one is reported
// truncated, never cut silently.
const batchBufSize = 4096

func newBatch(n int) *batch {
	b := &batch{hdrs: make([]mmsghdr, n), bufs: make([][]byte, n), iovs: make([]unix.Iovec, n)}
	for i := range n {
		b.bufs[i] = make([]byte, batchBufSize)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(batchBufSize)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b
}

// recvBatch reads the datagrams queued with recvmmsg, and returns how many it
// read. With wait it waits for at least one in the runtime's poller; without,
// an empty queue returns EAGAIN.
func (s *nlSocket) recvBatch(b *batch, wait bool) (int, error) {
	var n int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		n, rerr = int(r), nil
		if e != 0 {
			n, rerr = 0, e
		}
		return !wait || !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// datagram is the i-th datagram recvBatch read; truncated when it did not
// fit in its buffer.
func (b *batch) datagram(i int) (data []byte, truncated bool) {
	h := &b.hdrs[i]
	return b.bufs[i][:min(int(h.n), batchBufSize)], h.hdr.Flags&unix.MSG_TRUNC != 0
}

// send writes one request to the kernel.
func (s *nlSocket) send(msg []byte) error {
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

// drops returns the socket's drop counter: the messages the kernel could not
// queue to it (its receive buffer full). Each conntrack event is one message,
// so this is the exact count of events lost.
func (s *nlSocket) drops() (uint64, error) {
	var mem [skMeminfoVars]uint32
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	return uint64(mem[skMeminfoDrops]), err
}

// dumpRequest is IPCTNL_MSG_CT_GET with NLM_F_DUMP for every family.
func dumpRequest(seq uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], ctMsgGet)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:], seq)
	// nfgenmsg: family AF_UNSPEC (all), version NFNETLINK_V0, res_id 0.
	b[unix.NLMSG_HDRLEN+1] = unix.NFNETLINK_V0
	return b
}

// message is one netlink message of a datagram.
type message struct {
	typ, flags uint16
	seq        uint32
	data       []byte // after the header
}

// nextMessage splits the first message off b; ok is false at the end or on
// a malformed header.
func nextMessage(b []byte) (m message, rest []byte, ok bool) {
	if len(b) < unix.NLMSG_HDRLEN {
		return m, nil, false
	}
	l := int(binary.NativeEndian.Uint32(b))
	if l < unix.NLMSG_HDRLEN || l > len(b) {
		return m, nil, false
	}
	m = message{
		typ:   binary.NativeEndian.Uint16(b[4:]),
		flags: binary.NativeEndian.Uint16(b[6:]),
		seq:   binary.NativeEndian.Uint32(b[8:]),
		data:  b[unix.NLMSG_HDRLEN:l],
	}
	if al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1); al < len(b) {
		return m, b[al:], true
	}
	return m, nil, true
}

// errno is the error of an NLMSG_ERROR message (nil for an ack).
func (m message) errno() error {
	if len(m.data) < 4 {
		return unix.EINVAL
	}
	if e := int32(binary.NativeEndian.Uint32(m.data)); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}

// attrs walks netlink attributes, calling fn with each one's type (flags
// masked) and payload.
func attrs(b []byte, fn func(typ uint16, data []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:l])
		al := (l + 3) &^ 3
		if al >= len(b) {
			return
		}
		b = b[al:]
	}
}

// parseEntry decodes the tuples of a ctnetlink entry message (after the
// nfnetlink header). ok is false for what the table does not need: entries
// other than TCP and UDP, or without both tuples.
func parseEntry(data []byte) (e Entry, ok bool) {
	if len(data) < 4 {
		return e, false
	}
	var haveOrig, haveReply bool
	attrs(data[4:], func(typ uint16, b []byte) {
		switch typ {
		case ctaTupleOrig:
			haveOrig = parseTuple(b, &e.Orig)
		case ctaTupleReply:
			haveReply = parseTuple(b, &e.Reply)
		}
	})
	return e, haveOrig && haveReply && (e.Orig.Proto == ProtoTCP || e.Orig.Proto == ProtoUDP)
}

// parseOrig decodes only the original tuple (what a DESTROY needs).
func parseOrig(data []byte) (t Tuple, ok bool) {
	if len(data) < 4 {
		return t, false
	}
	attrs(data[4:], func(typ uint16, b []byte) {
		if typ == ctaTupleOrig {
			ok = parseTuple(b, &t)
		}
	})
	return t, ok && (t.Proto == ProtoTCP || t.Proto == ProtoUDP)
}

func parseTuple(b []byte, t *Tuple) bool {
	var src, dst netip.Addr
	var sport, dport uint16
	attrs(b, func(typ uint16, b []byte) {
		switch typ {
		case ctaTupleIP:
			attrs(b, func(typ uint16, b []byte) {
				switch {
				case (typ == ctaIPv4Src || typ == ctaIPv4Dst) && len(b) == 4:
					a := netip.AddrFrom4([4]byte(b))
					if typ == ctaIPv4Src {
						src = a
					} else {
						dst = a
					}
				case (typ == ctaIPv6Src || typ == ctaIPv6Dst) && len(b) == 16:
					a := netip.AddrFrom16([16]byte(b)).Unmap()
					if typ == ctaIPv6Src {
						src = a
					} else {
						dst = a
					}
				}
			})
		case ctaTupleProto:
			attrs(b, func(typ uint16, b []byte) {
				switch {
				case typ == ctaProtoNum && len(b) >= 1:
					t.Proto = b[0]
				case typ == ctaProtoSrc && len(b) >= 2:
					sport = binary.BigEndian.Uint16(b)
				case typ == ctaProtoDst && len(b) >= 2:
					dport = binary.BigEndian.Uint16(b)
				}
			})
		}
	})
	t.Src, t.Dst = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return src.IsValid() && dst.IsValid()
}
