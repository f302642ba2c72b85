// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netrec kernel side: TCP and UDP bytes sent and consumed, TCP state
 * transitions, RTT samples, retransmits, process exec/exit -> one ring buffer.
 *
 * Attribution: send/recv run in the calling process, which owns the socket
 * at that moment; we remember it per socket so events raised later in
 * softirq (state changes, RTT, retransmits) carry the owner, not whatever
 * task the CPU happened to be running. A passively opened socket inherits
 * the owner of its listener until the server touches it.
 *
 * Application calls: a uprobe pushes a frame per (thread, probe, depth),
 * its uretprobe pops it and emits one row with the duration, so recursion
 * and many threads in one function each pair up correctly.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/usdt.bpf.h>
#include "netrec.h"

#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define SOCK_DGRAM 2

/* Set by user space before load. */
const volatile bool filter_pid = false;
const volatile bool filter_comm = false;
const volatile bool filter_cgroup = false;
const volatile bool filter_port = false;
const volatile char targ_comm[TASK_COMM_LEN] = {};
/* RTT as buckets per socket and second (false: a row for every change). */
const volatile bool rtt_buckets = true;
/* Wake user space once per this many records per CPU (a power of two); it
 * also drains the ring on a timer, so a quiet CPU's records never wait long. */
const volatile __u64 wakeup_records = 4096;
/* Bytes and calls per socket and interval (--data INTERVAL) instead of a
 * record per call. Intervals are aligned to the wall clock (boottime plus
 * the capture's clock offset), as the analyzer's seconds are. */
const volatile bool data_always_aggregated = false;
const volatile __u64 data_interval_ns = 1000000000;
const volatile __u64 clock_offset_ns = 0;

/*
 * Per-call data recording switched to aggregates for now: 0 no, else why
 * (enum data_switch). User space sets it when the event rate passes its
 * budget and clears it when the rate is back; the kernel sets it itself when
 * the ring buffer nears or reaches full, before any record is lost.
 */
__u32 data_aggregating = 0;

/* Dummy instances so the skeleton generates the record types. */
struct netrec_sock_event _netrec_sock_event = {};
struct netrec_proc_event _netrec_proc_event = {};
struct netrec_call_event _netrec_call_event = {};
struct netrec_data_event _netrec_data_event = {};
enum record_form _record_form = 0;
enum event_kind _event_kind = 0;
enum counter _counter = 0;

/*
 * Capture-unique socket ids, handed out by user space: it keeps this queue
 * full of fresh ones (1, 2, 3, …). Taking one is atomic on every kernel,
 * where an atomic add that returns its value needs 5.12. Empty (over 65,536
 * new sockets between two refills, a second apart): the socket goes
 * untracked, counted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 65536);
	__type(value, __u64);
} sock_ids SEC(".maps");

static __always_inline __u64 new_sock_id(void)
{
	__u64 id = 0;

	bpf_map_pop_elem(&sock_ids, &id);
	return id;
}

/* Threads between splice(2)'s entry and exit: while it is 0, the hook that
 * runs on every receive (tcp_rcv_space_adjust) returns after one load. */
__u64 splices_in_flight = 0;

/* Records submitted per CPU since the last wake-up, each on its own cache
 * line: a counter shared by all CPUs would bounce between them on every
 * event (and bpf_ringbuf_query on every submit cost more than the record). */
struct wakeup_count {
	__u64 n;
	__u64 pad[7];
};
#define WAKEUP_CPUS 256
struct wakeup_count wakeup_counts[WAKEUP_CPUS] = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized by user space */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct sock_info {
	__u64 id;
	__u64 cgroup_id; /* the owner's cgroup v2 id */
	__u32 pid;
	__u32 tid;
	__u32 last_srtt_us;
	__u8 owner_known;
	__u8 selected; /* owner passes the pid/comm/cgroup filters */
	/* Reached TCP_CLOSE: kept, because the application may still read data
	 * queued before the peer's FIN, until the address is born again. */
	__u8 closed;
	/* Set once both ports are known: a connected socket's addresses and
	 * ports never change, so later events copy them from here instead of
	 * reading the socket again (half the cost of a send event). They also
	 * outlive the kernel zeroing the local port when it unhashes the
	 * socket, before its final CLOSE transition. */
	__u8 endpoints_known;
	__u16 lport;
	__u16 rport;
	__u16 family;
	/* User space has this socket's endpoints and owner as they are now (a
	 * SOCK_INFO record went out), so its send/recv can travel small. */
	__u8 announced;
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[TASK_COMM_LEN];
};

/* LRU: a socket we never see close (e.g. one closed before the capture
 * started reading) must not leak a slot forever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072); /* resized by user space */
	__type(key, __u64);          /* struct sock * */
	__type(value, struct sock_info);
} socks SEC(".maps");

/*
 * RTT samples per socket, second and bucket. The kernel only ever touches
 * the current second's entries; user space takes and deletes those of
 * seconds past (and all at stop) and writes one row each.
 */
struct rtt_key {
	__u64 sock_id;
	__u64 second; /* CLOCK_BOOTTIME seconds */
	__u32 bucket;
	__u32 pad;
};

struct rtt_count {
	__u64 ts;     /* the first sample's time */
	__u32 us;     /* the first sample */
	__u32 n;      /* srtt changes */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rtt_key);
	__type(value, struct rtt_count);
	/* Preallocated: tcp_probe measured 557-583 ns per run on redis-benchmark
	 * against 705-743 ns with BPF_F_NO_PREALLOC (--bpf-stats, BENCHMARKS.md). */
} rtt_counts SEC(".maps");

/*
 * Bytes and calls per socket, interval and owner process, for --data
 * INTERVAL, for per-call recording switched to aggregates, and for a data
 * record that found the ring buffer full. Like rtt_counts: the kernel only
 * adds to the current interval's entries; user space takes and deletes
 * those of intervals past. An owner change within an interval starts a new
 * entry, so every byte stays with the process that moved it.
 */
struct data_key {
	/* struct sock *: found without a socket-table lookup. A connection born
	 * in memory another one freed within the interval retires the old one's
	 * entry first, to its socket id here (retire_data; never a pointer). */
	__u64 sk;
	__u64 interval; /* (boottime + clock_offset_ns) / data_interval_ns */
	__u32 pid;
	__u32 pad;
};

/* Self-contained: user space writes its rows without needing the socket's
 * info record, which a full ring buffer may have refused. */
struct data_count {
	__u64 send_bytes;
	__u64 recv_bytes;
	__u64 send_calls;
	__u64 recv_calls;
	__u64 sock_id;
	__u64 cgroup_id;
	__u32 tid;       /* the first thread that moved data */
	/* 0: the socket is filtered out; the entry only saves later calls the
	 * socket-table lookup, and gets no rows (it counts no calls). */
	__u8 selected;
	__u8 protocol;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 pad2;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, struct data_key);
	__type(value, struct data_count);
} data_counts SEC(".maps");

/* So the skeleton generates them: user space reads them. */
struct rtt_key _rtt_key = {};
struct rtt_count _rtt_count = {};
struct data_key _data_key = {};
struct data_count _data_count = {};
enum data_switch _data_switch = 0;

struct listener_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};

struct owner {
	__u32 pid;
	__u32 tid;
	__u64 cgroup_id;
	__u8 selected;
	__u8 pad[7];
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct owner);
} listeners SEC(".maps");

/* Threads inside splice(2): the socket tcp_read_sock() consumed from. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, __u64); /* struct sock *, 0 until seen */
} splicing SEC(".maps");

/* Filters filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} targ_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16); /* port, host order */
	__type(value, __u8);
} targ_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} targ_cgroup SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

static __always_inline void submit(void *rec)
{
	struct wakeup_count *w = &wakeup_counts[bpf_get_smp_processor_id() & (WAKEUP_CPUS - 1)];
	/* Only this CPU writes its slot (programs do not migrate while they run). */
	__u64 n = ++w->n;

	bpf_ringbuf_submit(rec, n & (wakeup_records - 1) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP);
}

/* Does the current task pass the process filters? */
static __always_inline bool current_selected(void)
{
	if (filter_pid) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (!bpf_map_lookup_elem(&targ_pids, &tgid))
			return false;
	}
	if (filter_comm) {
		char comm[TASK_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
		for (int i = 0; i < TASK_COMM_LEN; i++) {
			if (comm[i] != targ_comm[i])
				return false;
			if (!comm[i])
				break;
		}
	}
	if (filter_cgroup && bpf_current_task_under_cgroup(&targ_cgroup, 0) != 1)
		return false;
	return true;
}

static __always_inline bool port_selected(__u16 lport, __u16 rport)
{
	if (!filter_port)
		return true;
	return bpf_map_lookup_elem(&targ_ports, &lport) || bpf_map_lookup_elem(&targ_ports, &rport);
}

/* IPPROTO_TCP or IPPROTO_UDP for the inet sockets netrec records, else 0. */
static __always_inline __u8 inet_protocol(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u16 protocol = BPF_CORE_READ(sk, sk_protocol);

	if (protocol == IPPROTO_TCP)
		return IPPROTO_TCP;
	if (protocol == IPPROTO_UDP && BPF_CORE_READ(sk, sk_type) == SOCK_DGRAM)
		return IPPROTO_UDP;
	return 0;
}

static __always_inline struct sock_info *sock_info_get(const struct sock *sk, __u8 protocol)
{
	__u64 key = (__u64)sk;
	struct sock_info *si = bpf_map_lookup_elem(&socks, &key);

	if (si)
		return si;
	struct sock_info fresh = {};

	fresh.id = new_sock_id();
	if (!fresh.id)
		return NULL;
	fresh.protocol = protocol;
	/* Losing a race with another CPU only wastes an id. */
	bpf_map_update_elem(&socks, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&socks, &key);
}

static __always_inline void retire_data(const struct sock *sk, const struct sock_info *si);

/* Another socket in the memory of `si`'s: a new identity. NULL: no id was
 * left, and the entry is gone (the socket goes untracked, counted). */
static __always_inline struct sock_info *sock_info_renew(const struct sock *sk, struct sock_info *si, __u8 protocol)
{
	__u64 id = new_sock_id();

	if (si->owner_known)
		retire_data(sk, si);
	if (!id) {
		__u64 key = (__u64)sk;

		bpf_map_delete_elem(&socks, &key);
		return NULL;
	}
	__builtin_memset(si, 0, sizeof(*si));
	si->id = id;
	si->protocol = protocol;
	return si;
}

/*
 * The entry of `sk` and its protocol, if it is an inet TCP or UDP socket
 * (0 if it is neither); `*si` is NULL when the table is full. A known open
 * TCP socket skips the protocol check (the hot path); the memory of a closed
 * one, or of a UDP one (whose close no hook sees), may since hold another
 * socket.
 */
static __always_inline __u8 inet_sock_info(const struct sock *sk, struct sock_info **si)
{
	__u64 key = (__u64)sk;

	*si = bpf_map_lookup_elem(&socks, &key);
	if (*si && !(*si)->closed && (*si)->protocol == IPPROTO_TCP)
		return IPPROTO_TCP;
	__u8 protocol = inet_protocol(sk);

	if (!protocol)
		return 0;
	if (!*si)
		*si = sock_info_get(sk, protocol);
	else if ((*si)->protocol != protocol)
		*si = sock_info_renew(sk, *si, protocol);
	return protocol;
}

static __always_inline bool tcp_sock_info(const struct sock *sk, struct sock_info **si)
{
	return inet_sock_info(sk, si) == IPPROTO_TCP;
}

/* Only call from the owner's own context (a syscall on this socket). */
static __always_inline void learn_owner(struct sock_info *si, __u64 pid_tgid)
{
	char comm[TASK_COMM_LEN];

	/* The same thread again (nearly every send and receive): nothing new.
	 * A thread renaming itself or changing cgroup keeps its old name and
	 * filter verdict on this socket until another thread uses it. */
	if (si->owner_known && si->tid == (__u32)pid_tgid && si->pid == pid_tgid >> 32)
		return;
	bpf_get_current_comm(comm, sizeof(comm));
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	/* Another thread of the same process with the same name and cgroup (a
	 * thread pool): the owner user space knows is still right. */
	bool same = si->owner_known && si->pid == pid_tgid >> 32 && si->cgroup_id == cgroup_id;

	for (int i = 0; i < TASK_COMM_LEN && same; i++)
		same = si->comm[i] == comm[i];
	if (!same)
		si->announced = 0;
	si->pid = pid_tgid >> 32;
	si->tid = (__u32)pid_tgid;
	si->owner_known = 1;
	si->cgroup_id = cgroup_id;
	si->selected = current_selected();
	__builtin_memcpy(si->comm, comm, sizeof(si->comm));
}

static __always_inline void read_endpoints(const struct sock *sk, __u16 *family, __u8 *saddr,
					   __u8 *daddr, __u16 *lport, __u16 *rport)
{
	*family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (*family == AF_INET) {
		bpf_core_read(saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	*lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	*rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

static __always_inline void store_endpoints(struct sock_info *si, __u16 family, const __u8 *saddr,
					    const __u8 *daddr, __u16 lport, __u16 rport)
{
	si->family = family;
	si->lport = lport;
	si->rport = rport;
	__builtin_memcpy(si->saddr, saddr, sizeof(si->saddr));
	__builtin_memcpy(si->daddr, daddr, sizeof(si->daddr));
}

/* Keeps endpoints just read once both ports are known (they never change
 * after). */
static __always_inline void remember_endpoints(struct sock_info *si, __u16 family, const __u8 *saddr,
					       const __u8 *daddr, __u16 lport, __u16 rport)
{
	if (!lport || !rport)
		return;
	store_endpoints(si, family, saddr, daddr, lport, rport);
	si->endpoints_known = 1;
}

/* Reads and remembers the socket's endpoints unless they are known already. */
static __always_inline void know_endpoints(const struct sock *sk, struct sock_info *si)
{
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family, lport, rport;

	if (si->endpoints_known)
		return;
	read_endpoints(sk, &family, saddr, daddr, &lport, &rport);
	remember_endpoints(si, family, saddr, daddr, lport, rport);
}

/* The remote end of one datagram, in its socket's family (an IPv4 peer of
 * an IPv6 socket as ::ffff:a.b.c.d); family 0: not known. */
struct peer {
	__u16 family;
	__u16 port; /* host order */
	__u8 addr[16];
};

/*
 * The one body behind every full socket record. `si` may be NULL when the
 * socket table is full: the event is still recorded, attributed to the
 * current task only if `in_owner_context`. `kind` may be RECORD_SOCK_INFO.
 * `peer`: a datagram's own remote end, in place of the socket's.
 * 1: written; 0: filtered out; -1: the ring buffer was full (counted).
 */
static __always_inline int emit_sock_event_at(const struct sock *sk, struct sock_info *si, __u32 kind,
					       __u64 value, __u8 old_state, __u8 new_state,
					       bool in_owner_context, __u64 ts_ns, __u32 samples,
					       const struct peer *peer)
{
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family, lport, rport;
	bool known, selected;

	if (si && si->endpoints_known) {
		family = si->family;
		lport = si->lport;
		rport = si->rport;
		__builtin_memcpy(saddr, si->saddr, sizeof(saddr));
		__builtin_memcpy(daddr, si->daddr, sizeof(daddr));
	} else {
		read_endpoints(sk, &family, saddr, daddr, &lport, &rport);
		if (si)
			remember_endpoints(si, family, saddr, daddr, lport, rport);
	}
	if (peer) {
		rport = peer->family ? peer->port : 0;
		__builtin_memcpy(daddr, peer->addr, sizeof(daddr));
	}
	if (si) {
		known = si->owner_known;
		selected = si->selected;
	} else {
		count(COUNTER_SOCK_UNTRACKED);
		known = in_owner_context;
		selected = in_owner_context && current_selected();
	}
	if ((filter_pid || filter_comm || filter_cgroup) && !(known && selected))
		return 0;
	if (!port_selected(lport, rport))
		return 0;

	struct netrec_sock_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		/* A lost SOCK_INFO loses no row: the data after it goes out in full. */
		if (kind < EVENT_KIND_MAX)
			count(COUNTER_LOST_BASE + kind);
		return -1;
	}
	e->kind = kind;
	e->ts_ns = ts_ns ? ts_ns : bpf_ktime_get_boot_ns();
	e->value = value;
	e->old_state = old_state;
	e->new_state = new_state;
	e->owner_known = known;
	e->samples = samples;
	if (si && known) {
		e->sock_id = si->id;
		e->pid = si->pid;
		e->tid = si->tid;
		e->cgroup_id = si->cgroup_id;
		__builtin_memcpy(e->comm, si->comm, sizeof(e->comm));
	} else if (known) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		e->sock_id = 0;
		e->pid = pid_tgid >> 32;
		e->tid = (__u32)pid_tgid;
		e->cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	} else {
		e->sock_id = si ? si->id : 0;
		e->pid = 0;
		e->tid = 0;
		e->cgroup_id = 0;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	e->family = family;
	__builtin_memcpy(e->saddr, saddr, sizeof(saddr));
	__builtin_memcpy(e->daddr, daddr, sizeof(daddr));
	e->sport = lport;
	e->dport = rport;
	e->protocol = si ? si->protocol : inet_protocol(sk);
	submit(e);
	return 1;
}

static __always_inline int emit_sock_event(const struct sock *sk, struct sock_info *si, __u32 kind,
					   __u64 value, __u8 old_state, __u8 new_state,
					   bool in_owner_context)
{
	return emit_sock_event_at(sk, si, kind, value, old_state, new_state, in_owner_context, 0, 0, NULL);
}

/*
 * Makes sure user space has `si`'s endpoints and owner as they are now, so
 * rows that name the socket by id can be completed there. Re-announced
 * after CLOSE too, so user space may forget closed sockets.
 * 1: announced; 0: the socket is filtered out; -1: the endpoints are not
 * known yet, send the row in full; -2: the ring buffer is full.
 */
static __always_inline int announce(const struct sock *sk, struct sock_info *si, bool in_owner_context)
{
	if (si->announced && !si->closed)
		return 1;
	int sent = emit_sock_event(sk, si, RECORD_SOCK_INFO, 0, 0, 0, in_owner_context);

	if (sent < 0)
		return -2;
	if (sent == 0)
		return 0;
	if (!si->endpoints_known)
		return -1;
	si->announced = 1;
	return 1;
}

/* The filters emit_sock_event applies, for an announced socket. */
static __always_inline bool announced_selected(const struct sock_info *si)
{
	if ((filter_pid || filter_comm || filter_cgroup) && !(si->owner_known && si->selected))
		return false;
	return port_selected(si->lport, si->rport);
}

/* No field of the socket in the key: each read is a helper call here
 * (measured: two port reads cost 45 ns per call). */
static __always_inline struct data_key data_key_of(const struct sock *sk, __u32 pid, __u64 now)
{
	struct data_key key = {
		.sk = (__u64)sk,
		.interval = (now + clock_offset_ns) / data_interval_ns,
		.pid = pid,
	};
	return key;
}

/*
 * A new connection in the memory of a closed socket (the slab hands freed
 * memory out again at once: 20 short connections in a row measured one
 * address): the closed one's entry of this interval moves to a key no call
 * looks up, its socket id in place of the memory, so the new one's calls
 * start an entry of their own. The closed socket moves no more data (its
 * memory was freed), so nothing adds to the entry while it moves.
 */
static __always_inline void retire_data(const struct sock *sk, const struct sock_info *si)
{
	struct data_key key = data_key_of(sk, si->pid, bpf_ktime_get_boot_ns());
	struct data_count *c = bpf_map_lookup_elem(&data_counts, &key);

	if (!c)
		return;
	struct data_count old = *c;
	struct data_key retired = key;

	retired.sk = si->id;
	if (!bpf_map_update_elem(&data_counts, &retired, &old, BPF_NOEXIST))
		bpf_map_delete_elem(&data_counts, &key);
}

/*
 * One call's bytes into an entry. Two CPUs may add to one entry at once (the
 * send and receive tracepoints run after the socket lock is released):
 * plain atomic adds, which every kernel since 5.8 has.
 */
static __always_inline void add_data(struct data_count *c, __u32 kind, __u64 bytes)
{
	if (kind == EVENT_SEND) {
		__sync_fetch_and_add(&c->send_bytes, bytes);
		__sync_fetch_and_add(&c->send_calls, 1);
	} else {
		__sync_fetch_and_add(&c->recv_bytes, bytes);
		__sync_fetch_and_add(&c->recv_calls, 1);
	}
}

/* One call's bytes into the entry of `key` if there is one (a socket
 * filtered out has an entry that counts nothing). false: no entry yet. */
static __always_inline bool add_to_entry(const struct data_key *key, __u32 kind, __u64 bytes)
{
	struct data_count *c = bpf_map_lookup_elem(&data_counts, key);

	if (!c)
		return false;
	if (c->selected)
		add_data(c, kind, bytes);
	return true;
}

/*
 * Adds one call's bytes to its socket's entry for the current interval,
 * making the entry (with the socket's id, endpoints, owner and filter
 * verdict) if it is the interval's first. false: the table is full.
 */
static __always_inline bool aggregate_data(const struct sock *sk, const struct sock_info *si, __u32 kind,
					   __u64 bytes, __u64 pid_tgid, __u64 now)
{
	struct data_key key = data_key_of(sk, pid_tgid >> 32, now);

	if (!add_to_entry(&key, kind, bytes)) {
		struct data_count fresh = {
			.sock_id = si->id,
			.cgroup_id = si->cgroup_id,
			.tid = (__u32)pid_tgid,
			.selected = announced_selected(si),
			.family = si->family,
			.lport = si->lport,
			.rport = si->rport,
			.protocol = si->protocol,
		};

		__builtin_memcpy(fresh.saddr, si->saddr, sizeof(fresh.saddr));
		__builtin_memcpy(fresh.daddr, si->daddr, sizeof(fresh.daddr));
		__builtin_memcpy(fresh.comm, si->comm, sizeof(fresh.comm));
		/* Losing a race with another CPU is fine: its entry is found below. */
		bpf_map_update_elem(&data_counts, &key, &fresh, BPF_NOEXIST);
		return add_to_entry(&key, kind, bytes);
	}
	return true;
}

/* Records per CPU between two looks at the ring's fill level. */
#define FILL_CHECK_RECORDS 1024

/*
 * A UDP socket's endpoints, read each call (connect() may change them, or
 * undo them); a change means user space must learn them again. true: this
 * datagram's remote end is the socket's own (it is connected, and `peer`
 * names no other), so it travels as a TCP socket's data does.
 */
static __always_inline bool udp_endpoints(const struct sock *sk, struct sock_info *si, const struct peer *peer)
{
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family, lport, rport;
	bool same;

	read_endpoints(sk, &family, saddr, daddr, &lport, &rport);
	same = si->family == family && si->lport == lport && si->rport == rport;
	for (int i = 0; i < 16 && same; i++)
		same = si->saddr[i] == saddr[i] && si->daddr[i] == daddr[i];
	if (!same) {
		store_endpoints(si, family, saddr, daddr, lport, rport);
		si->announced = 0;
	}
	si->endpoints_known = lport && rport;
	if (!si->endpoints_known)
		return false;
	if (!peer || !peer->family)
		return true;
	same = peer->port == rport;
	for (int i = 0; i < 16 && same; i++)
		same = peer->addr[i] == daddr[i];
	return same;
}

/* Syscall numbers (x86_64) whose arguments say where a datagram's address is. */
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_RECVMMSG 299
#define NR_SENDMMSG 307
#define MMSGHDR_SIZE 64 /* struct mmsghdr: a user_msghdr (56 bytes) and msg_len, padded */

/*
 * Per thread inside sendmmsg/recvmmsg, or a receive whose source address
 * its syscall has yet to copy out (tracepoint path, unconnected UDP).
 * LRU: a thread that dies inside a syscall must not keep a slot.
 */
struct datagram_call {
	__u64 sk;    /* the pending receive's socket; 0: none */
	__u64 ts_ns;
	__u64 bytes;
	__u64 uaddr; /* the caller's sockaddr buffer, where its source will be */
	__u32 index; /* mmsg: the message the next send/receive is for */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, struct datagram_call);
} datagram_calls SEC(".maps");

/* Entries in datagram_calls (at least): while there are none, the exit of
 * every recv(2) of a TCP socket costs one load instead of a lookup. An entry
 * the LRU evicts leaves it above zero, which only costs that lookup. */
__u64 datagram_calls_live = 0;

static __always_inline struct datagram_call *datagram_call_of(__u32 tid)
{
	struct datagram_call *dc = bpf_map_lookup_elem(&datagram_calls, &tid);

	if (dc)
		return dc;
	struct datagram_call fresh = {};

	if (!bpf_map_update_elem(&datagram_calls, &tid, &fresh, BPF_NOEXIST))
		__sync_fetch_and_add(&datagram_calls_live, 1);
	return bpf_map_lookup_elem(&datagram_calls, &tid);
}

/* An address of `family` as the remote end of a `sock_family` socket. */
static __always_inline void peer_set(struct peer *p, __u16 sock_family, __u16 family, const void *addr,
				     __be16 port)
{
	__builtin_memset(p, 0, sizeof(*p));
	if (family == AF_INET && sock_family == AF_INET) {
		__builtin_memcpy(p->addr, addr, 4);
	} else if (family == AF_INET && sock_family == AF_INET6) {
		p->addr[10] = 0xff;
		p->addr[11] = 0xff;
		__builtin_memcpy(p->addr + 12, addr, 4);
	} else if (family == AF_INET6 && sock_family == AF_INET6) {
		__builtin_memcpy(p->addr, addr, 16);
	} else {
		return;
	}
	p->family = sock_family;
	p->port = bpf_ntohs(port);
}

static __always_inline long read_mem(void *dst, __u32 size, const void *src, bool kernel)
{
	return kernel ? bpf_probe_read_kernel(dst, size, src) : bpf_probe_read_user(dst, size, src);
}

/* A sockaddr_in or sockaddr_in6 (kernel memory if `kernel`, else the caller's). */
static __always_inline void sockaddr_peer(const void *sa, bool kernel, __u16 sock_family, struct peer *p)
{
	struct sockaddr_in6 a = {};

	p->family = 0;
	if (!sa || read_mem(&a.sin6_family, sizeof(a.sin6_family), sa, kernel))
		return;
	if (a.sin6_family == AF_INET) {
		struct sockaddr_in in = {};

		if (!read_mem(&in, sizeof(in), sa, kernel))
			peer_set(p, sock_family, AF_INET, &in.sin_addr, in.sin_port);
	} else if (a.sin6_family == AF_INET6) {
		if (!read_mem(&a, sizeof(a), sa, kernel))
			peer_set(p, sock_family, AF_INET6, &a.sin6_addr, a.sin6_port);
	}
}

/*
 * Where the current syscall keeps this datagram's address (tracepoint path,
 * where the hook sees only the socket): the sockaddr of sendto/recvfrom, the
 * msg_name of sendmsg/recvmsg, that of the message this call is for in
 * sendmmsg/recvmmsg. 0: none (write/read, io_uring, no buffer given).
 */
static __always_inline __u64 syscall_sockaddr(__u32 kind)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = BPF_CORE_READ(regs, orig_ax);
	bool send = kind == EVENT_SEND;
	__u64 msg, name = 0;
	int namelen = 0;

	if (nr == (send ? NR_SENDTO : NR_RECVFROM)) {
		name = BPF_CORE_READ(regs, r8);
		if (send)
			namelen = BPF_CORE_READ(regs, r9);
		else if (bpf_probe_read_user(&namelen, sizeof(namelen), (void *)BPF_CORE_READ(regs, r9)))
			return 0;
		return namelen > 0 ? name : 0;
	}
	msg = BPF_CORE_READ(regs, si);
	if (nr == (send ? NR_SENDMMSG : NR_RECVMMSG)) {
		struct datagram_call *dc = datagram_call_of((__u32)bpf_get_current_pid_tgid());

		if (!dc)
			return 0;
		msg += (__u64)dc->index++ * MMSGHDR_SIZE;
	} else if (nr != (send ? NR_SENDMSG : NR_RECVMSG)) {
		return 0;
	}
	/* struct user_msghdr: msg_name at 0, msg_namelen at 8 */
	if (bpf_probe_read_user(&name, sizeof(name), (void *)msg) ||
	    bpf_probe_read_user(&namelen, sizeof(namelen), (void *)(msg + 8)))
		return 0;
	return namelen > 0 ? name : 0;
}

/* The pending receive's row, now that its syscall copied the source address out. */
static __always_inline void datagram_received(struct datagram_call *dc)
{
	const struct sock *sk = (const struct sock *)dc->sk;
	struct sock_info *si;
	struct peer p;

	if (!sk)
		return;
	dc->sk = 0;
	__u64 key = (__u64)sk;

	si = bpf_map_lookup_elem(&socks, &key);
	sockaddr_peer((const void *)dc->uaddr, false, BPF_CORE_READ(sk, __sk_common.skc_family), &p);
	emit_sock_event_at(sk, si, EVENT_RECV, dc->bytes, 0, 0, true, dc->ts_ns, 0, &p);
}

/*
 * Bytes moved by the application itself: the caller owns the socket. The
 * hot path: one table lookup, then one 32-byte record, or one add to the
 * socket's aggregate entry. `peer`: a datagram's remote end where the hook
 * knows it; `from_syscall`: the hook knows only the socket (tracepoints), so
 * an unconnected UDP socket's datagram takes its address from the syscall.
 */
static __always_inline void handle_bytes(const struct sock *sk, __u32 kind, __u64 bytes, const struct peer *peer,
					 bool from_syscall)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	bool aggregating = data_always_aggregated || data_aggregating;
	/* Read once the call is known to be recorded: the clock is a third of
	 * the cost here (read_tsc in perf). */
	__u64 now = aggregating ? bpf_ktime_get_boot_ns() : 0;
	struct sock_info *si;

	/* Aggregating, the interval's entry of this socket and process is all
	 * a call needs (one lookup); the socket table is for its first call. */
	if (aggregating) {
		struct data_key key = data_key_of(sk, pid_tgid >> 32, now);

		if (add_to_entry(&key, kind, bytes))
			return;
	}
	__u8 protocol = inet_sock_info(sk, &si);

	if (!protocol)
		return;
	if (!si) {
		emit_sock_event_at(sk, si, kind, bytes, 0, 0, true, 0, 0, protocol == IPPROTO_UDP ? peer : NULL);
		return;
	}
	learn_owner(si, pid_tgid);
	if (protocol == IPPROTO_UDP && !udp_endpoints(sk, si, peer)) {
		/* Each datagram its own remote end: a full record each, or an
		 * aggregate without it. */
		if (aggregating) {
			if (!aggregate_data(sk, si, kind, bytes, pid_tgid, now))
				emit_sock_event_at(sk, si, kind, bytes, 0, 0, true, 0, 0, peer);
			return;
		}
		struct peer p = {};
		__u64 uaddr = from_syscall ? syscall_sockaddr(kind) : 0;

		if (uaddr && kind == EVENT_RECV) {
			/* The syscall copies the source address out after this
			 * hook: the row waits for it (its exit, or recvmmsg's next
			 * message). */
			struct datagram_call *dc = datagram_call_of((__u32)pid_tgid);

			if (dc) {
				datagram_received(dc);
				dc->sk = (__u64)sk;
				dc->ts_ns = bpf_ktime_get_boot_ns();
				dc->bytes = bytes;
				dc->uaddr = uaddr;
				return;
			}
		}
		if (uaddr && kind == EVENT_SEND)
			sockaddr_peer((const void *)uaddr, false, si->family, &p);
		emit_sock_event_at(sk, si, kind, bytes, 0, 0, true, 0, 0, peer ? peer : &p);
		return;
	}
	if (aggregating) {
		/* The entry carries the endpoints and owner: no info record needed. */
		know_endpoints(sk, si);
		/* A full table: this call travels as a full record. */
		if (!aggregate_data(sk, si, kind, bytes, pid_tgid, now))
			emit_sock_event(sk, si, kind, bytes, 0, 0, true);
		return;
	}
	int known = announce(sk, si, true);

	if (known == -1)
		emit_sock_event(sk, si, kind, bytes, 0, 0, true);
	if (known == -1 || known == 0 || !announced_selected(si))
		return;

	now = bpf_ktime_get_boot_ns();
	struct netrec_data_event *e = known > 0 ? bpf_ringbuf_reserve(&events, sizeof(*e), 0) : NULL;

	if (!e) {
		/* Full: the bytes wait in the kernel as an aggregate, and data
		 * goes there until user space switches back. */
		data_aggregating = DATA_SWITCH_RING_FULL;
		if (!aggregate_data(sk, si, kind, bytes, pid_tgid, now))
			count(COUNTER_LOST_BASE + kind);
		return;
	}
	e->kind = RECORD_DATA | kind;
	e->tid = (__u32)pid_tgid;
	e->ts_ns = now;
	e->sock_id = si->id;
	e->bytes = bytes;
	submit(e);
	/* Now and then (one load of the counter submit just bumped), switch to
	 * aggregates before the ring is full rather than when it is. */
	if (!(wakeup_counts[bpf_get_smp_processor_id() & (WAKEUP_CPUS - 1)].n & (FILL_CHECK_RECORDS - 1)) &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 4 * 3)
		data_aggregating = DATA_SWITCH_RING_NEAR_FULL;
}

/* A TCP hook's bytes (its socket's endpoints are the remote end). */
static __always_inline void handle_data(const struct sock *sk, __u32 kind, __u64 bytes)
{
	handle_bytes(sk, kind, bytes, NULL, false);
}

/* Every send and receive of TCP and UDP sockets (6.3 and later). */
SEC("raw_tp/sock_send_length")
int BPF_PROG(sock_send_length, struct sock *sk, int ret, int flags)
{
	if (ret > 0)
		handle_bytes(sk, EVENT_SEND, ret, NULL, true);
	return 0;
}

/* MSG_PEEK leaves the data in the queue: nothing was consumed; the error
 * queue holds the socket's errors and timestamps, not data. */
SEC("raw_tp/sock_recv_length")
int BPF_PROG(sock_recv_length, struct sock *sk, int ret, int flags)
{
	if (ret > 0 && !(flags & (MSG_PEEK | MSG_ERRQUEUE)))
		handle_bytes(sk, EVENT_RECV, ret, NULL, true);
	return 0;
}

/* The end of a syscall that may have left a datagram's row waiting for its
 * source address, or counted mmsg messages: the row goes out, the count
 * starts again. */
static __always_inline void datagram_syscall_exit(void)
{
	if (!datagram_calls_live)
		return;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct datagram_call *dc = bpf_map_lookup_elem(&datagram_calls, &tid);

	if (!dc)
		return;
	datagram_received(dc);
	if (!bpf_map_delete_elem(&datagram_calls, &tid))
		__sync_fetch_and_sub(&datagram_calls_live, 1);
}

SEC("tp/syscalls/sys_exit_recvfrom")
int recvfrom_exit(struct trace_event_raw_sys_exit *ctx)
{
	datagram_syscall_exit();
	return 0;
}

SEC("tp/syscalls/sys_exit_recvmsg")
int recvmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	datagram_syscall_exit();
	return 0;
}

SEC("tp/syscalls/sys_exit_recvmmsg")
int recvmmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	datagram_syscall_exit();
	return 0;
}

SEC("tp/syscalls/sys_exit_sendmmsg")
int sendmmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	datagram_syscall_exit();
	return 0;
}

/*
 * splice(2) from a TCP socket consumes through tcp_read_sock(), which never
 * reaches sock_recv_length. tcp_read_sock() calls tcp_rcv_space_adjust() on
 * the socket it drains; the syscall's return value is what was consumed.
 */
SEC("tp/syscalls/sys_enter_splice")
int splice_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 none = 0;

	if (!bpf_map_update_elem(&splicing, &tid, &none, BPF_NOEXIST))
		__sync_fetch_and_add(&splices_in_flight, 1);
	return 0;
}

SEC("raw_tp/tcp_rcv_space_adjust")
int BPF_PROG(tcp_rcv_space_adjust, struct sock *sk)
{
	if (!splices_in_flight)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *slot = bpf_map_lookup_elem(&splicing, &tid);

	if (slot)
		*slot = (__u64)sk;
	return 0;
}

SEC("tp/syscalls/sys_exit_splice")
int splice_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *slot = bpf_map_lookup_elem(&splicing, &tid);
	struct sock *sk;

	if (!slot)
		return 0;
	sk = (struct sock *)*slot;
	if (!bpf_map_delete_elem(&splicing, &tid))
		__sync_fetch_and_add(&splices_in_flight, -1); /* a plain add: 5.10 has no fetch-and-sub */
	if (sk && ctx->ret > 0)
		handle_data(sk, EVENT_RECV, ctx->ret);
	return 0;
}

static __always_inline struct listener_key listener_key_of(const struct sock *sk)
{
	struct listener_key k = {};

	k.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	k.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	return k;
}

/* The one body behind every state transition, whichever hook saw it. */
static __always_inline void handle_state(const struct sock *sk, int oldstate, int newstate)
{
	struct sock_info *si;

	if (!tcp_sock_info(sk, &si))
		return;

	/* A new connection at the address of a closed one: a new identity. */
	bool born = (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN)) ||
		    newstate == TCP_SYN_RECV;

	if (si && si->closed && born)
		si = sock_info_renew(sk, si, IPPROTO_TCP);
	if (si) {
		/* connect() and listen() run in the owner's context. */
		if (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN))
			learn_owner(si, bpf_get_current_pid_tgid());
		if (newstate == TCP_LISTEN) {
			struct listener_key k = listener_key_of(sk);
			struct owner o = {};

			o.pid = si->pid;
			o.tid = si->tid;
			o.cgroup_id = si->cgroup_id;
			o.selected = si->selected;
			__builtin_memcpy(o.comm, si->comm, sizeof(o.comm));
			bpf_map_update_elem(&listeners, &k, &o, BPF_ANY);
		}
		/* A passive open: until accept(), the listener's owner owns it. */
		if (!si->owner_known && (newstate == TCP_SYN_RECV || oldstate == TCP_SYN_RECV)) {
			struct listener_key k = listener_key_of(sk);
			struct owner *o = bpf_map_lookup_elem(&listeners, &k);

			if (o) {
				si->pid = o->pid;
				si->tid = o->tid;
				si->cgroup_id = o->cgroup_id;
				si->selected = o->selected;
				si->owner_known = 1;
				si->announced = 0; /* user space learns the owner before the next small record */
				__builtin_memcpy(si->comm, o->comm, sizeof(si->comm));
			}
		}
	}
	emit_sock_event(sk, si, EVENT_STATE, 0, oldstate, newstate, false);
	if (newstate == TCP_CLOSE) {
		if (oldstate == TCP_LISTEN) {
			struct listener_key k = listener_key_of(sk);

			bpf_map_delete_elem(&listeners, &k);
		}
		if (si)
			si->closed = 1;
	}
}

/*
 * accept(): from now on the accepting process owns the connection (a
 * pre-fork server's worker, not the master that listened; PostgreSQL's
 * postmaster, until the backend it forks uses the socket). One row, so a
 * passive open is counted for the process that took it off the queue.
 */
static __always_inline void handle_accept(const struct sock *sk)
{
	struct sock_info *si;

	if (!sk || !tcp_sock_info(sk, &si))
		return;
	if (si)
		learn_owner(si, bpf_get_current_pid_tgid());
	emit_sock_event(sk, si, EVENT_ACCEPT, 0, 0, 0, true);
}

#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* The socket behind file descriptor `fd` of the current task, or NULL. */
static __always_inline struct sock *sock_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);

	return BPF_CORE_READ(sock, sk);
}

/* Kernels without fentry or kprobes: the descriptor accept returned. */
SEC("tp/syscalls/sys_exit_accept4")
int accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		handle_accept(sock_of_fd(ctx->ret));
	return 0;
}

SEC("tp/syscalls/sys_exit_accept")
int accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		handle_accept(sock_of_fd(ctx->ret));
	return 0;
}

/*
 * srtt's bucket: exact below 32 us, else 32 buckets per power of two, so two
 * values in one bucket differ by less than 1/32 (3.1 %) of either.
 */
static __always_inline __u32 rtt_bucket(__u32 us)
{
	__u32 k = 0, v = us;

	if (us < 32)
		return us;
	if (v >> 16) { k += 16; v >>= 16; }
	if (v >> 8) { k += 8; v >>= 8; }
	if (v >> 4) { k += 4; v >>= 4; }
	if (v >> 2) { k += 2; v >>= 2; }
	if (v >> 1) { k += 1; }
	return (k << 5) | ((us >> (k - 5)) & 31);
}

/*
 * tcp_probe fires for every segment received on an established socket; a
 * change of srtt is a sample. On loopback it changes with nearly every
 * segment, so samples are counted per socket, second and bucket in
 * rtt_counts, and user space writes each entry as one row (the bucket's
 * first value and its count) once its second is over. Percentiles over the
 * rows weighted by count stay within 1/32 of those over every change. A full
 * table, or a socket user space does not know yet and whose info cannot go
 * out, gets a row per change instead. tcp_probe runs under the socket's lock,
 * so one socket's entries are never updated at once.
 */
static __always_inline void handle_rtt(const struct sock *sk)
{
	struct sock_info *si;

	if (!tcp_sock_info(sk, &si))
		return;
	__u32 srtt_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;

	if (!srtt_us)
		return;
	if (!si) {
		emit_sock_event_at(sk, si, EVENT_RTT, srtt_us, 0, 0, false, 0, 1, NULL);
		return;
	}
	if (si->last_srtt_us == srtt_us)
		return;
	si->last_srtt_us = srtt_us;
	if (!rtt_buckets) {
		emit_sock_event_at(sk, si, EVENT_RTT, srtt_us, 0, 0, false, 0, 1, NULL);
		return;
	}
	/* Its rows are made from user space's socket table: the socket must be there. */
	int known = announce(sk, si, false);

	if (known < 0)
		emit_sock_event_at(sk, si, EVENT_RTT, srtt_us, 0, 0, false, 0, 1, NULL);
	if (known <= 0 || !announced_selected(si))
		return;
	__u64 now = bpf_ktime_get_boot_ns();
	struct rtt_key key = { .sock_id = si->id, .second = now / 1000000000ULL, .bucket = rtt_bucket(srtt_us) };
	struct rtt_count *c = bpf_map_lookup_elem(&rtt_counts, &key);

	if (c) {
		c->n++;
		return;
	}
	struct rtt_count first = { .ts = now, .us = srtt_us, .n = 1 };

	if (bpf_map_update_elem(&rtt_counts, &key, &first, BPF_NOEXIST))
		emit_sock_event_at(sk, si, EVENT_RTT, srtt_us, 0, 0, false, now, 1, NULL);
}

static __always_inline void handle_retransmit(const struct sock *sk)
{
	struct sock_info *si;

	if (!tcp_sock_info(sk, &si))
		return;
	emit_sock_event(sk, si, EVENT_RETRANSMIT, 0, 0, 0, false);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	handle_state(sk, oldstate, newstate);
	return 0;
}

SEC("raw_tp/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, struct sk_buff *skb)
{
	handle_rtt(sk);
	return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk)
{
	handle_retransmit(sk);
	return 0;
}

/*
 * ---- kernels before 6.3: the same bodies behind kprobes and fentry ----
 *
 * Older kernels lack sock_send_length/sock_recv_length, so bytes come from
 * the TCP functions themselves; state, RTT and retransmits have kprobe and
 * fentry entry points too, for --attach kprobe|fentry. User space loads one
 * set per probe (set_autoload) after asking the kernel's BTF what exists.
 *
 * fexit sees arguments and return value at once. A kretprobe does not see
 * arguments, so its kprobe leaves the socket in `inflight` per thread.
 * Receives avoid kretprobes altogether: a thread blocked in recv() would
 * hold one of the few kretprobe instances (maxactive) and returns beyond
 * them are dropped by the kernel without a trace. Instead tcp_recvmsg and
 * tcp_splice_read mark the thread's socket and tcp_cleanup_rbuf, which
 * both reach with the bytes consumed so far (`copied`), reports them.
 */

/* tcp_recvmsg's parameter count, from the kernel's BTF: 6 before 5.19,
 * which had `nonblock` before `flags`. */
const volatile __u32 recvmsg_nargs = 5;
/* Whether the kprobe receive path also counts splice(2) (else the splice
 * tracepoints do). */
const volatile bool kprobe_counts_splice = false;

enum inflight_hook {
	HOOK_SEND,
	HOOK_RECV,
	HOOK_LISTEN,
	HOOK_RETRANSMIT,
	HOOK_UDP_SEND,
	HOOK_UDP6_SEND,
};

struct inflight_key {
	__u32 tid;
	__u32 cpu; /* the idle tasks all have tid 0: tell their softirqs apart */
	__u32 hook;
};

struct inflight {
	__u64 sk;
	__u64 msg; /* udp_sendmsg: its struct msghdr *, read at return */
	__u32 flags;
	__u32 reported; /* receive: bytes of this call already reported */
	__u8 splice;
	__u8 pad[7];
};

/* LRU: the receive marks are never deleted (tcp_cleanup_rbuf may come several
 * times per call), and a full table must not refuse new calls. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct inflight_key);
	__type(value, struct inflight);
} inflight SEC(".maps");

static __always_inline struct inflight_key inflight_key_of(__u32 hook)
{
	struct inflight_key k = {};

	k.tid = (__u32)bpf_get_current_pid_tgid();
	k.cpu = k.tid ? 0 : bpf_get_smp_processor_id();
	k.hook = hook;
	return k;
}

/* Entry of a call whose return we need. A mark already there means the
 * previous return was never seen (kretprobe instances exhausted): lost. */
static __always_inline void inflight_push_msg(__u32 hook, const void *sk, const void *msg, __u32 lost_kind)
{
	struct inflight_key k = inflight_key_of(hook);
	struct inflight f = {};

	f.sk = (__u64)sk;
	f.msg = (__u64)msg;
	if (bpf_map_update_elem(&inflight, &k, &f, BPF_NOEXIST)) {
		count(COUNTER_LOST_BASE + lost_kind);
		bpf_map_update_elem(&inflight, &k, &f, BPF_ANY);
	}
}

static __always_inline void inflight_push(__u32 hook, const void *sk, __u32 lost_kind)
{
	inflight_push_msg(hook, sk, NULL, lost_kind);
}

/* No mark: the call began before the capture (return probes are attached
 * first), which is outside the window rather than lost. */
static __always_inline struct sock *inflight_pop_msg(__u32 hook, struct msghdr **msg)
{
	struct inflight_key k = inflight_key_of(hook);
	struct inflight *f = bpf_map_lookup_elem(&inflight, &k);
	struct sock *sk;

	if (!f)
		return NULL;
	sk = (struct sock *)f->sk;
	*msg = (struct msghdr *)f->msg;
	bpf_map_delete_elem(&inflight, &k);
	return sk;
}

static __always_inline struct sock *inflight_pop(__u32 hook)
{
	struct msghdr *msg;

	return inflight_pop_msg(hook, &msg);
}

static __always_inline void recv_mark(const struct sock *sk, __u32 flags, bool splice)
{
	struct inflight_key k = inflight_key_of(HOOK_RECV);
	struct inflight f = {};

	f.sk = (__u64)sk;
	f.flags = flags;
	f.splice = splice;
	bpf_map_update_elem(&inflight, &k, &f, BPF_ANY);
}

/* bytes sent: tcp_sendmsg, and tcp_sendpage (sendfile, until 6.5) */

static __always_inline void send_returned(int ret)
{
	struct sock *sk = inflight_pop(HOOK_SEND);

	if (sk && ret > 0)
		handle_data(sk, EVENT_SEND, ret);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe_tcp_sendmsg, struct sock *sk)
{
	inflight_push(HOOK_SEND, sk, EVENT_SEND);
	return 0;
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(kretprobe_tcp_sendmsg, int ret)
{
	send_returned(ret);
	return 0;
}

SEC("kprobe/tcp_sendpage")
int BPF_KPROBE(kprobe_tcp_sendpage, struct sock *sk)
{
	inflight_push(HOOK_SEND, sk, EVENT_SEND);
	return 0;
}

SEC("kretprobe/tcp_sendpage")
int BPF_KRETPROBE(kretprobe_tcp_sendpage, int ret)
{
	send_returned(ret);
	return 0;
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	if (ret > 0)
		handle_data(sk, EVENT_SEND, ret);
	return 0;
}

SEC("fexit/tcp_sendpage")
int BPF_PROG(fexit_tcp_sendpage, struct sock *sk, struct page *page, int offset, size_t size,
	     int flags, int ret)
{
	if (ret > 0)
		handle_data(sk, EVENT_SEND, ret);
	return 0;
}

/* bytes consumed: tcp_recvmsg (MSG_PEEK consumes nothing), tcp_splice_read */

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kprobe_tcp_recvmsg, struct sock *sk)
{
	__u64 parm4 = PT_REGS_PARM4(ctx), parm5 = PT_REGS_PARM5(ctx);

	/* Two fixed loads: the verifier refuses a computed offset into ctx. */
	barrier_var(parm4);
	barrier_var(parm5);
	recv_mark(sk, recvmsg_nargs == 6 ? parm5 : parm4, false);
	return 0;
}

SEC("kprobe/tcp_splice_read")
int BPF_KPROBE(kprobe_tcp_splice_read, struct socket *sock)
{
	recv_mark(BPF_CORE_READ(sock, sk), 0, true);
	return 0;
}

/*
 * Within one tcp_recvmsg `copied` is cumulative (MSG_WAITALL calls this
 * before each wait), so report only the growth; each tcp_read_sock under
 * splice starts from zero.
 */
SEC("kprobe/tcp_cleanup_rbuf")
int BPF_KPROBE(kprobe_tcp_cleanup_rbuf, struct sock *sk, int copied)
{
	struct inflight_key k = inflight_key_of(HOOK_RECV);
	struct inflight *f = bpf_map_lookup_elem(&inflight, &k);
	__u32 bytes;

	if (!f || f->sk != (__u64)sk || copied <= 0)
		return 0;
	if (f->splice) {
		if (!kprobe_counts_splice)
			return 0;
		bytes = copied;
	} else {
		if (f->flags & MSG_PEEK || (__u32)copied <= f->reported)
			return 0;
		bytes = copied - f->reported;
		f->reported = copied;
	}
	handle_data(sk, EVENT_RECV, bytes);
	return 0;
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	if (ret > 0 && !(flags & MSG_PEEK))
		handle_data(sk, EVENT_RECV, ret);
	return 0;
}

/* Before 5.19 tcp_recvmsg took `nonblock` before `flags`. */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg_nonblock, struct sock *sk, struct msghdr *msg, size_t len,
	     int nonblock, int flags, int *addr_len, int ret)
{
	if (ret > 0 && !(flags & MSG_PEEK))
		handle_data(sk, EVENT_RECV, ret);
	return 0;
}

SEC("fexit/tcp_splice_read")
int BPF_PROG(fexit_tcp_splice_read, struct socket *sock, loff_t *ppos,
	     struct pipe_inode_info *pipe, size_t len, unsigned int flags, long ret)
{
	if (ret > 0)
		handle_data(BPF_CORE_READ(sock, sk), EVENT_RECV, ret);
	return 0;
}

/*
 * UDP before 6.3 (no sock_*_length tracepoints): udp_sendmsg and
 * udpv6_sendmsg see the destination a sendto/sendmsg named (msg_name, the
 * kernel's copy); skb_consume_udp sees each datagram a receive consumed
 * (MSG_PEEK passes a negative length), its source in the packet's headers,
 * whether or not the caller asked for it. udpv6_sendmsg hands IPv4
 * destinations on to udp_sendmsg: an IPv6 socket's sends count there only.
 */
static __always_inline void udp_sent(struct sock *sk, struct msghdr *msg, int ret, bool v6)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct peer p;

	if (ret <= 0 || (!v6 && family == AF_INET6))
		return;
	sockaddr_peer(msg ? BPF_CORE_READ(msg, msg_name) : NULL, true, family, &p);
	handle_bytes(sk, EVENT_SEND, ret, &p, false);
}

static __always_inline void udp_consumed(struct sock *sk, struct sk_buff *skb, int len)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	struct udphdr uh;
	__u8 version;
	struct peer p = {};

	if (len <= 0)
		return;
	if (!bpf_probe_read_kernel(&version, 1, head + nh) && !bpf_probe_read_kernel(&uh, sizeof(uh), head + th)) {
		if (version >> 4 == 4) {
			struct iphdr ip;

			if (!bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
				peer_set(&p, family, AF_INET, &ip.saddr, uh.source);
		} else if (version >> 4 == 6) {
			struct ipv6hdr ip6;

			if (!bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
				peer_set(&p, family, AF_INET6, &ip6.saddr, uh.source);
		}
	}
	handle_bytes(sk, EVENT_RECV, len, &p, false);
}

SEC("fexit/udp_sendmsg")
int BPF_PROG(fexit_udp_sendmsg, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	udp_sent(sk, msg, ret, false);
	return 0;
}

SEC("fexit/udpv6_sendmsg")
int BPF_PROG(fexit_udpv6_sendmsg, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	udp_sent(sk, msg, ret, true);
	return 0;
}

SEC("fentry/skb_consume_udp")
int BPF_PROG(fentry_skb_consume_udp, struct sock *sk, struct sk_buff *skb, int len)
{
	udp_consumed(sk, skb, len);
	return 0;
}

SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(kprobe_udp_sendmsg, struct sock *sk, struct msghdr *msg)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET6)
		inflight_push_msg(HOOK_UDP_SEND, sk, msg, EVENT_SEND);
	return 0;
}

SEC("kprobe/udpv6_sendmsg")
int BPF_KPROBE(kprobe_udpv6_sendmsg, struct sock *sk, struct msghdr *msg)
{
	inflight_push_msg(HOOK_UDP6_SEND, sk, msg, EVENT_SEND);
	return 0;
}

/* The entry probes already left an IPv6 socket's nested udp_sendmsg out. */
static __always_inline void udp_send_returned(__u32 hook, int ret)
{
	struct msghdr *msg;
	struct sock *sk = inflight_pop_msg(hook, &msg);

	if (sk)
		udp_sent(sk, msg, ret, true);
}

SEC("kretprobe/udp_sendmsg")
int BPF_KRETPROBE(kretprobe_udp_sendmsg, int ret)
{
	udp_send_returned(HOOK_UDP_SEND, ret);
	return 0;
}

SEC("kretprobe/udpv6_sendmsg")
int BPF_KRETPROBE(kretprobe_udpv6_sendmsg, int ret)
{
	udp_send_returned(HOOK_UDP6_SEND, ret);
	return 0;
}

SEC("kprobe/skb_consume_udp")
int BPF_KPROBE(kprobe_skb_consume_udp, struct sock *sk, struct sk_buff *skb, int len)
{
	udp_consumed(sk, skb, len);
	return 0;
}

/*
 * states: tcp_set_state makes most transitions; listen() and the child
 * socket of a passive open set theirs directly (the tracepoint sees those
 * inside inet_csk_listen_start and inet_csk_clone_lock).
 */

SEC("kprobe/tcp_set_state")
int BPF_KPROBE(kprobe_tcp_set_state, struct sock *sk, int state)
{
	handle_state(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state);
	return 0;
}

SEC("fentry/tcp_set_state")
int BPF_PROG(fentry_tcp_set_state, struct sock *sk, int state)
{
	handle_state(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state);
	return 0;
}

SEC("kprobe/inet_csk_listen_start")
int BPF_KPROBE(kprobe_inet_csk_listen_start, struct sock *sk)
{
	inflight_push(HOOK_LISTEN, sk, EVENT_STATE);
	return 0;
}

SEC("kretprobe/inet_csk_listen_start")
int BPF_KRETPROBE(kretprobe_inet_csk_listen_start, int ret)
{
	struct sock *sk = inflight_pop(HOOK_LISTEN);

	if (sk && ret == 0)
		handle_state(sk, TCP_CLOSE, TCP_LISTEN);
	return 0;
}

SEC("fexit/inet_csk_listen_start")
int BPF_PROG(fexit_inet_csk_listen_start, struct sock *sk, int ret)
{
	if (ret == 0)
		handle_state(sk, TCP_CLOSE, TCP_LISTEN);
	return 0;
}

/* Before 5.19 inet_csk_listen_start took the backlog too. */
SEC("fexit/inet_csk_listen_start")
int BPF_PROG(fexit_inet_csk_listen_start_backlog, struct sock *sk, int backlog, int ret)
{
	if (ret == 0)
		handle_state(sk, TCP_CLOSE, TCP_LISTEN);
	return 0;
}

/* The child is a copy of the listener, so it leaves TCP_LISTEN. */
SEC("kretprobe/inet_csk_clone_lock")
int BPF_KRETPROBE(kretprobe_inet_csk_clone_lock, struct sock *newsk)
{
	if (newsk)
		handle_state(newsk, TCP_LISTEN, TCP_SYN_RECV);
	return 0;
}

SEC("fexit/inet_csk_clone_lock")
int BPF_PROG(fexit_inet_csk_clone_lock, const struct sock *sk, const struct request_sock *req,
	     const gfp_t priority, struct sock *newsk)
{
	if (newsk)
		handle_state(newsk, TCP_LISTEN, TCP_SYN_RECV);
	return 0;
}

/* inet_csk_accept returns the connection taken off the listener's queue
 * (accept(2), io_uring and in-kernel accepts alike). */
SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(kretprobe_inet_csk_accept, struct sock *newsk)
{
	handle_accept(newsk);
	return 0;
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_inet_csk_accept, struct sock *sk, void *arg, struct sock *newsk)
{
	handle_accept(newsk);
	return 0;
}

/* Before 6.10 inet_csk_accept took flags, err and kern. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(fexit_inet_csk_accept_flags, struct sock *sk, int flags, int *err, bool kern, struct sock *newsk)
{
	handle_accept(newsk);
	return 0;
}

/* RTT: the tcp_probe tracepoint sits at the top of tcp_rcv_established. */

SEC("kprobe/tcp_rcv_established")
int BPF_KPROBE(kprobe_tcp_rcv_established, struct sock *sk)
{
	handle_rtt(sk);
	return 0;
}

SEC("fentry/tcp_rcv_established")
int BPF_PROG(fentry_tcp_rcv_established, struct sock *sk)
{
	handle_rtt(sk);
	return 0;
}

/* retransmits: the tracepoint fires when tcp_retransmit_skb succeeds. */

SEC("kprobe/tcp_retransmit_skb")
int BPF_KPROBE(kprobe_tcp_retransmit_skb, struct sock *sk)
{
	inflight_push(HOOK_RETRANSMIT, sk, EVENT_RETRANSMIT);
	return 0;
}

SEC("kretprobe/tcp_retransmit_skb")
int BPF_KRETPROBE(kretprobe_tcp_retransmit_skb, int ret)
{
	struct sock *sk = inflight_pop(HOOK_RETRANSMIT);

	if (sk && ret == 0)
		handle_retransmit(sk);
	return 0;
}

SEC("fexit/tcp_retransmit_skb")
int BPF_PROG(fexit_tcp_retransmit_skb, struct sock *sk, struct sk_buff *skb, int segs, int ret)
{
	if (ret == 0)
		handle_retransmit(sk);
	return 0;
}

static __always_inline void emit_proc_event(__u32 kind, struct task_struct *task,
					    struct linux_binprm *bprm)
{
	if (!current_selected())
		return;
	struct netrec_proc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(COUNTER_LOST_BASE + kind);
		return;
	}
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_status = kind == EVENT_EXIT ? BPF_CORE_READ(task, exit_code) : 0;
	e->pad = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->filename[0] = 0;
	if (bprm)
		bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	submit(e);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	emit_proc_event(EVENT_EXEC, task, bprm);
	return 0;
}

/* One exit per process: the last thread out, whichever it is. */
SEC("raw_tp/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	emit_proc_event(EVENT_EXIT, task, NULL);
	return 0;
}

/* ---- application calls: uprobes and USDT ---- */

struct call_key {
	__u32 tid;
	__u32 probe;
};

struct call_frame_key {
	__u32 tid;
	__u32 probe;
	__u32 depth;
};

struct call_frame {
	__u64 ts_ns;
	__u64 sp; /* stack pointer at entry; 0 for USDT pairs */
	__s64 args[CALL_ARGS];
	__u64 cgroup_id;
	__u32 pid;
	__u32 pad;
	char comm[TASK_COMM_LEN];
};

/* So the skeleton generates them: user space reads unfinished calls. */
struct call_frame_key _call_frame_key = {};
struct call_frame _call_frame = {};

/* Calls in progress per thread and probe. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct call_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} call_depth SEC(".maps");

/* Their entry frames; user space reads what is left at stop as unfinished. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct call_frame_key);
	__type(value, struct call_frame);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} call_frames SEC(".maps");

/* Frames abandoned by longjmp or an exception are skipped at most this deep. */
#define CALL_UNWIND_MAX 8

static __always_inline void call_enter(__u32 probe, __u64 sp, __s64 a0, __s64 a1, __s64 a2)
{
	if (!current_selected())
		return;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call_key key = { .tid = (__u32)pid_tgid, .probe = probe };
	__u32 zero = 0, *depth = bpf_map_lookup_elem(&call_depth, &key);

	if (!depth) {
		bpf_map_update_elem(&call_depth, &key, &zero, BPF_NOEXIST);
		depth = bpf_map_lookup_elem(&call_depth, &key);
		if (!depth) {
			count(COUNTER_CALL_UNTRACKED);
			return;
		}
	}
	struct call_frame_key fkey = { .tid = key.tid, .probe = probe, .depth = *depth };
	struct call_frame f = {
		.ts_ns = bpf_ktime_get_boot_ns(),
		.sp = sp,
		.args = { a0, a1, a2 },
		.pid = pid_tgid >> 32,
		.cgroup_id = bpf_get_current_cgroup_id(),
	};

	bpf_get_current_comm(f.comm, sizeof(f.comm));
	if (bpf_map_update_elem(&call_frames, &fkey, &f, BPF_ANY)) {
		count(COUNTER_CALL_UNTRACKED);
		return;
	}
	*depth += 1;
}

static __always_inline void emit_call(__u32 kind, __u32 probe, __u32 tid, __u32 depth,
				      const struct call_frame *f, __u64 now, bool finished,
				      __s64 retval, bool has_retval)
{
	struct netrec_call_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(COUNTER_LOST_BASE + kind);
		return;
	}
	e->kind = kind;
	e->pid = f->pid;
	e->tid = tid;
	e->probe = probe;
	e->cgroup_id = f->cgroup_id;
	e->ts_ns = f->ts_ns;
	e->duration_ns = finished ? now - f->ts_ns : 0;
	e->args[0] = f->args[0];
	e->args[1] = f->args[1];
	e->args[2] = f->args[2];
	e->retval = retval;
	e->depth = depth;
	e->finished = finished;
	e->has_retval = has_retval;
	e->pad[0] = 0;
	e->pad[1] = 0;
	__builtin_memcpy(e->comm, f->comm, sizeof(e->comm));
	submit(e);
}

/*
 * Pops the innermost frame of `probe` in this thread and emits the call.
 * With `sp` (uretprobes), a frame whose entry stack pointer lies below the
 * returning one belongs to a call that never returned (longjmp, exception):
 * it is emitted as unfinished and the search goes on outward.
 */
static __always_inline void call_return(__u32 probe, __u64 sp, __s64 retval, bool has_retval)
{
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_key key = { .tid = tid, .probe = probe };
	__u32 *depth = bpf_map_lookup_elem(&call_depth, &key);

	/* No frame: the call began before the capture or was not selected. */
	if (!depth)
		return;
	for (int i = 0; i < CALL_UNWIND_MAX && *depth > 0; i++) {
		struct call_frame_key fkey = { .tid = tid, .probe = probe, .depth = *depth - 1 };
		struct call_frame *f = bpf_map_lookup_elem(&call_frames, &fkey);

		*depth -= 1;
		if (!f)
			continue;
		/* At return, the stack pointer is one return address above entry's. */
		bool abandoned = sp && f->sp && f->sp + 8 < sp;

		emit_call(EVENT_CALL, probe, tid, fkey.depth, f, now, !abandoned, retval, has_retval && !abandoned);
		bpf_map_delete_elem(&call_frames, &fkey);
		if (!abandoned)
			break;
	}
	if (*depth == 0)
		bpf_map_delete_elem(&call_depth, &key);
}

SEC("uprobe")
int call_entry(struct pt_regs *ctx)
{
	call_enter(bpf_get_attach_cookie(ctx), PT_REGS_SP(ctx), PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx),
		   PT_REGS_PARM3(ctx));
	return 0;
}

SEC("uretprobe")
int call_exit(struct pt_regs *ctx)
{
	call_return(bpf_get_attach_cookie(ctx), PT_REGS_SP(ctx), PT_REGS_RC(ctx), true);
	return 0;
}

static __always_inline __s64 usdt_arg(struct pt_regs *ctx, __u64 n)
{
	long v = 0;

	if (bpf_usdt_arg(ctx, n, &v))
		return 0;
	return v;
}

/* A single USDT probe: one row with its first arguments. */
SEC("usdt")
int usdt_fire(struct pt_regs *ctx)
{
	if (!current_selected())
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call_frame f = {
		.ts_ns = bpf_ktime_get_boot_ns(),
		.args = { usdt_arg(ctx, 0), usdt_arg(ctx, 1), usdt_arg(ctx, 2) },
		.pid = pid_tgid >> 32,
		.cgroup_id = bpf_get_current_cgroup_id(),
	};

	bpf_get_current_comm(f.comm, sizeof(f.comm));
	emit_call(EVENT_USDT, bpf_usdt_cookie(ctx), (__u32)pid_tgid, 0, &f, f.ts_ns, true, 0, false);
	return 0;
}

/* A USDT start/done pair (query__start, query__done) is one call. */
SEC("usdt")
int usdt_start(struct pt_regs *ctx)
{
	call_enter(bpf_usdt_cookie(ctx), 0, usdt_arg(ctx, 0), usdt_arg(ctx, 1), usdt_arg(ctx, 2));
	return 0;
}

SEC("usdt")
int usdt_done(struct pt_regs *ctx)
{
	call_return(bpf_usdt_cookie(ctx), 0, 0, false);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
