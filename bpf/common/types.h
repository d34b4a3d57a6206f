/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The ABI shared by the BPF programs and Go (bpf2go -type generates the Go side; a Go test pins the sizes).
 * Fields are ordered by size with explicit padding, never packed, so C and Go agree on every offset. */
#ifndef EBPFNET_COMMON_TYPES_H
#define EBPFNET_COMMON_TYPES_H

/* conn_tuple.metadata bits. */
enum conn_metadata {
	CONN_TCP = 1 << 0,
	CONN_UDP = 1 << 1,
	CONN_V4 = 1 << 2, /* the socket is AF_INET */
	CONN_V6 = 1 << 3, /* the socket is AF_INET6 (may carry v4-mapped addresses) */
};

enum conn_direction {
	CONN_DIRECTION_UNKNOWN = 0,
	CONN_DIRECTION_INCOMING = 1,
	CONN_DIRECTION_OUTGOING = 2,
};

/* conn_stats.flags bits. */
enum conn_flags {
	CONN_L_INIT = 1 << 0, /* the local end sent payload */
	CONN_R_INIT = 1 << 1, /* the local end received payload */
	CONN_ASSURED = CONN_L_INIT | CONN_R_INIT,
	/* The connection closed but its record did not fit in the ring buffer: it stays in the
	 * connection table with final counters until user space collects it. */
	CONN_CLOSED = 1 << 2,
};

/* Indexes of the telemetry per-CPU array. Each counts an event where data was dropped or a
 * fallback was taken; user space sums the CPUs and exports them. */
enum telemetry_counter {
	TELEMETRY_CONN_MAP_FULL = 0,   /* conns insert failed: traffic of that connection not counted */
	TELEMETRY_SOCK_MAP_FULL,       /* socks insert failed: socket not tracked */
	TELEMETRY_RING_RESERVE_FAILED, /* closed record kept in conns (CONN_CLOSED) instead */
	TELEMETRY_CLOSED_LOST,	       /* closed record neither in the ring nor kept in conns */
	TELEMETRY_MISSED_PEER,	       /* unconnected UDP datagram without a known peer address */
	TELEMETRY_TUPLE_REUSED,	       /* a new UDP socket reused a tuple whose old entry was still there */
	TELEMETRY_RESCUED,	       /* a backup program handled an event the kernel skipped the primary for */
	TELEMETRY_LISTEN_MAP_FULL,     /* listen_ports insert failed: that port's accepts judged by bound port */
	TELEMETRY_COOKIE_MAP_FULL,     /* udp_cookies insert failed: that socket's release is not seen */
	/* Protocol classification (protocols/): outcomes, not drops. */
	TELEMETRY_CLASSIFIED,	    /* a connection's protocol stack was decided (some layer known) */
	TELEMETRY_UNCLASSIFIED,	    /* a connection with payload was left unknown */
	TELEMETRY_CLASSIFY_SHORT,   /* a classifier needed more bytes than the packet held */
	TELEMETRY_CGROUP_PATH_LOST, /* cgroup_paths insert or path read failed: resolved by a walk, if still there */
	TELEMETRY_DNS_RING_FULL,    /* a DNS response's answers did not fit in dns_answers: its names are not learnt */
	TELEMETRY_DNS_NO_SOCKET,    /* a DNS response came to a socket without a socks entry (namespace unknown) */
	TELEMETRY_COUNTER_MAX,
};

/* sock_info.tracked */
enum sock_track_state {
	SOCK_UNTRACKED = 0,
	SOCK_TRACKED = 1,      /* tuple set, conns has the entry */
	SOCK_TRACK_FAILED = 2, /* conns was full when the first payload came: counted once, not retried */
	SOCK_RELEASED = 3,     /* UDP socket released while the ring was full: user space collects it */
	SOCK_TUPLE_KNOWN = 4,  /* TCP accepted, tuple set, waiting for the owner's first I/O */
};

/* Slots of the guard_depth per-CPU array: one per tracepoint with a backup program. */
enum guard_slot {
	GUARD_STATE = 0,
	GUARD_DESTROY,
	GUARD_SEND,
	GUARD_RECV,
	GUARD_MAX,
};

/* Kinds of ring-buffer records. */
enum record_kind {
	RECORD_CONN_CLOSED = 1,	  /* tuple + final value of a closed connection */
	RECORD_SOCK_RELEASED = 2, /* a UDP socket was released: value.stats.sock_id names it */
	RECORD_CONN_OPEN = 3,	  /* tuple + value of a table entry, from the conns iterator (tcp/iter.h) */
};

/* Key of the connection table. Addresses are 16 bytes as they lie in memory (network byte
 * order), split into two native u64 halves; IPv4 is stored v4-mapped (::ffff:a.b.c.d). */
struct conn_tuple {
	__u64 saddr_h;	/* local address, bytes 0-7 */
	__u64 saddr_l;	/* local address, bytes 8-15 */
	__u64 daddr_h;	/* peer address, bytes 0-7 */
	__u64 daddr_l;	/* peer address, bytes 8-15 */
	__u16 sport;	/* local port, host byte order */
	__u16 dport;	/* peer port, host byte order */
	__u32 netns;	/* inode number of the socket's network namespace */
	__u32 pid;	/* tgid of the process that owns the connection */
	__u32 metadata; /* enum conn_metadata bits */
};

/* protocol_stack.api */
enum proto_api {
	API_UNKNOWN = 0,
	API_GRPC = 1, /* HTTP/2 whose HEADERS carry content-type application/grpc */
};

/* protocol_stack.application. HTTP/1 names its version where the first bytes say it. */
enum proto_application {
	APP_UNKNOWN = 0,
	APP_HTTP = 1, /* HTTP/1.x, version not seen */
	APP_HTTP2 = 2,
	APP_KAFKA = 3,
	APP_AMQP = 4, /* 0-9-1 */
	APP_REDIS = 5,
	APP_POSTGRES = 6,
	APP_MYSQL = 7,
	APP_MONGO = 8,
	APP_DNS = 9,
	APP_HTTP10 = 10,
	APP_HTTP11 = 11,
};

/* protocol_stack.encryption */
enum proto_encryption {
	ENC_NONE = 0,
	ENC_TLS10 = 1,
	ENC_TLS11 = 2,
	ENC_TLS12 = 3,
	ENC_TLS13 = 4,
};

/* protocol_stack.flags: where the classification of a connection stands (protocols/). */
enum stack_flags {
	STACK_SETTLED = 1 << 0,	     /* decided, or given up: no more work on this connection */
	STACK_SEEN_EGRESS = 1 << 1,  /* the first payload the local end sent was examined */
	STACK_SEEN_INGRESS = 1 << 2, /* the first payload the local end received was examined */
	STACK_TLS_WAIT = 1 << 3,     /* a ClientHello was seen: the ServerHello gives version and ALPN */
	STACK_H2_WAIT = 1 << 4,	     /* HTTP/2 seen: a HEADERS frame says whether it is gRPC */
	STACK_HTTP_WAIT = 1 << 5,    /* HTTP/1 request seen without its version: the response gives it */
	/* With STACK_TLS_WAIT only (tls.h), cleared when TLS is decided: the ClientHello offered exactly one
	 * ALPN protocol, this one. A TLS 1.3 ServerHello hides the server's choice, so the offer names the
	 * application when it left the server no other choice. */
	STACK_ALPN_H2 = 1 << 6,	    /* "h2" */
	STACK_ALPN_HTTP11 = 1 << 7, /* "http/1.1" */
};

/* The classification layers of a connection (0 = not classified). */
struct protocol_stack {
	__u8 api;	  /* enum proto_api */
	__u8 application; /* enum proto_application */
	__u8 encryption;  /* enum proto_encryption */
	__u8 flags;	  /* enum stack_flags */
};

/* Classification in progress, in the socket's storage (maps/classify_state.h). */
/* classify_state.delivered: what a settled socket's packets still need (protocols/hook.h). */
enum classify_delivery {
	CLASSIFY_PENDING = 0,	    /* not settled, or settled and not yet in a sock_info */
	CLASSIFY_DELIVERED = 1,	    /* nothing more: the packet returns after the storage lookup */
	CLASSIFY_DELIVERED_DNS = 2, /* DNS: its received responses are captured (protocols/dns_capture.h) */
};

struct classify_state {
	struct protocol_stack stack;
	__u8 packets;	/* payload packets handed to the classifiers so far (at most CLASSIFY_MAX_PACKETS) */
	__u8 delivered; /* enum classify_delivery */
	__u8 tries;	/* packets that found no sock_info to deliver a settled stack to */
	__u8 _pad;
};

struct conn_stats {
	__u64 sent_bytes;   /* payload bytes sent by the local end (TCP: tcp/counters.h) */
	__u64 recv_bytes;   /* payload bytes received by the local end */
	__u64 sent_packets; /* TCP: data segments (tcp_sock.data_segs_out); UDP: datagrams */
	__u64 recv_packets; /* TCP: data segments (tcp_sock.data_segs_in); UDP: datagrams */
	__u64 timestamp;    /* UDP: last datagram; TCP: when the counters were read. ns of CLOCK_MONOTONIC */
	__u64 start;	    /* when the connection was first seen, ns of CLOCK_MONOTONIC */
	__u64 duration;	    /* closed connections: ns from start to close */
	__u64 cookie;	    /* the kernel's socket cookie (ss -e "sk:" shows it); see sock_cookie() */
	__u64 sock_id;	    /* address of the struct sock: matches a released UDP socket to its entries */
	__u64 cgroup_id;    /* cgroup v2 id (directory inode) of the owner when it took the socket (take_owner) */
	struct protocol_stack protocol_stack;
	__u8 flags;	/* enum conn_flags bits */
	__u8 direction; /* enum conn_direction */
	__u8 _pad[2];
	char comm[16]; /* the owner's task name when it made or first used the connection; a process may
			* be gone by the next poll, and /proc with it */
};

/* Read from tcp_sock at each poll and at close (tcp/health.h). */
struct tcp_stats {
	__u32 rtt;		 /* smoothed RTT (SRTT), us; 0 before the first sample */
	__u32 rtt_var;		 /* RTT variation (RTTVAR, RFC 6298), us */
	__u32 retransmits;	 /* segments retransmitted after the handshake (tcp_sock.total_retrans) */
	__u16 state_transitions; /* bit n set when the socket entered TCP state n */
	__u8 syn_retransmits;	 /* SYN (connecting) or SYN-ACK (accepting) retransmits, at most 255 */
	__u8 failure_reason;	 /* errno the connection ended with (sk_err, at most 255), 0 when clean */
};

/* Value of the connection table. */
struct conn_value {
	struct conn_stats stats;
	struct tcp_stats tcp;
};

/* One record of the closed ring or the conns iterator. */
struct conn_record {
	__u32 kind; /* enum record_kind */
	__u32 _pad;
	struct conn_tuple tuple;
	struct conn_value value;
};

/* Per-socket state, keyed by the socket's address (sock_id). */
struct sock_info {
	struct conn_tuple tuple;     /* valid once tracked is set */
	__u64 start;		     /* first seen, ns of CLOCK_MONOTONIC */
	__u64 cookie;		     /* socket cookie, or a synthetic one (see sock_cookie) */
	__u64 sent_base;	     /* TCP: payload sent before the tracer saw the socket (tcp/counters.h) */
	__u64 recv_base;	     /* TCP: payload received likewise */
	__u64 cgroup_id;	     /* the owner's cgroup v2 id (take_owner), 0 until it has one */
	__u32 pid_hint;		     /* tgid that called connect(), or the listener's owner for accepted sockets */
	__u32 segs_out_base;	     /* TCP: data_segs_out likewise */
	__u32 segs_in_base;	     /* TCP: data_segs_in likewise */
	__u32 retrans_base;	     /* TCP: total_retrans that are not the connection's (tcp/health.h) */
	struct protocol_stack stack; /* the settled classification (protocols/), copied into every record */
	__u16 transitions;	     /* bit n set when the socket entered TCP state n */
	__u8 failure_reason;	     /* sk_err when the socket entered CLOSE (the app clears it on read) */
	__u8 syn_retrans;	     /* TCP: handshake retransmits, at most 255 (tcp/health.h) */
	__u8 direction;		     /* enum conn_direction */
	__u8 tracked;		     /* enum sock_track_state */
	__u8 _pad[2];
	char comm[16]; /* task name of the owner, when it ran in its context (see conn_stats) */
};

/* One DNS response with answers that a local socket received (protocols/dns_capture.h), in the
 * dns_answers ring: the start of the message, for user space to parse. Submitted with only the
 * bytes used (DNS_RECORD_HEAD + len). */
struct dns_record {
	__u32 netns;   /* inode of the receiving socket's network namespace */
	__u16 msg_len; /* bytes of the whole message: UDP payload, or TCP's length prefix */
	__u16
	    len; /* bytes of msg that hold the message's start: min(msg_len, what the packet held, DNS_CAPTURE_BYTES) */
	__u8 msg[DNS_CAPTURE_BYTES]; /* the DNS message from its header on (TCP: after the length prefix) */
};

/* Key of listen_ports: a TCP port in LISTEN, per network namespace. */
struct port_binding {
	__u32 netns;
	__u16 port; /* host byte order */
	__u16 _pad;
};

/* Peer address seen by a cgroup sendmsg/recvmsg hook, for the UDP syscall in flight. */
struct udp_peer {
	__u64 addr_h; /* as conn_tuple.daddr_h */
	__u64 addr_l;
	__u16 port; /* host byte order */
	__u16 _pad[3];
};

/* The path of a cgroup2 directory the kernel created, from the hierarchy's root (cgroup/mkdir.h). len
 * counts the terminating NUL: len == CGROUP_PATH_BYTES means the path may be cut short. */
struct cgroup_path {
	__u32 len;
	char path[CGROUP_PATH_BYTES];
};

#endif
