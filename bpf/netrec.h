/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of every record that crosses the ring buffer.
 * User space reads these through the skeleton's generated `types` module;
 * nobody writes a mirror struct by hand.
 */
#ifndef NETREC_H
#define NETREC_H

#define TASK_COMM_LEN 16
#define FILENAME_LEN 256

/*
 * Every record starts with a u32: an event_kind, or'ed with a record_form
 * when the record is not the kind's full layout. User space switches on it.
 */
enum event_kind {
	EVENT_SEND = 1,
	EVENT_RECV = 2,
	EVENT_STATE = 3,
	EVENT_RTT = 4,
	EVENT_RETRANSMIT = 5,
	EVENT_EXEC = 6,
	EVENT_EXIT = 7,
	EVENT_CALL = 8,
	EVENT_USDT = 9,
	EVENT_ACCEPT = 10,
	EVENT_KIND_MAX = 11,
};

/*
 * Send and receive are most of the traffic, so they travel small: a
 * netrec_data_event names its socket by id, and the socket's endpoints and
 * owner cross once, as a SOCK_INFO netrec_sock_event, whenever they are new
 * to user space (a new socket, a new owner). User space keeps a table of
 * them and fills those columns of every data row.
 */
enum record_form {
	RECORD_KIND_MASK = 0xff,
	RECORD_DATA = 0x100,      /* + EVENT_SEND / EVENT_RECV: netrec_data_event */
	RECORD_SOCK_INFO = 0x200, /* netrec_sock_event, no row of its own */
};

/*
 * Counters kept in the kernel (per-CPU array indexed by these):
 * LOST_* + kind counts records dropped because the ring buffer was full;
 * SOCK_UNTRACKED counts events whose socket did not fit the socket table
 * (they are still recorded, without a sock_id);
 * CALL_UNTRACKED counts calls not recorded because the table of calls in
 * progress was full (user space reports them as lost calls).
 */
enum counter {
	COUNTER_SOCK_UNTRACKED = 0,
	COUNTER_CALL_UNTRACKED = 1,
	COUNTER_LOST_BASE = 2, /* + event_kind */
	COUNTER_MAX = COUNTER_LOST_BASE + EVENT_KIND_MAX,
};

/* Why per-call data recording switched to aggregates (data_aggregating). */
enum data_switch {
	DATA_SWITCH_NONE = 0,
	DATA_SWITCH_BUDGET = 1,          /* user space: the event rate passed --data-budget */
	DATA_SWITCH_RING_NEAR_FULL = 2,  /* kernel: the ring buffer was 3/4 full */
	DATA_SWITCH_RING_FULL = 3,       /* kernel: a data record found it full */
};

/*
 * state, rtt, retransmit, accept, a socket's info, and send/recv in full: on
 * an untracked socket, or a datagram of an unconnected UDP socket, whose
 * remote end is the datagram's (dport 0: the peer is not known).
 */
struct netrec_sock_event {
	__u32 kind;
	__u32 pid;         /* owner's tgid; meaningless unless owner_known */
	__u32 tid;
	__u8 owner_known;
	__u8 family;       /* AF_INET or AF_INET6 */
	__u8 old_state;    /* state events: TCP_* numbers */
	__u8 new_state;
	__u64 ts_ns;       /* CLOCK_BOOTTIME */
	__u64 sock_id;     /* 0: socket table was full */
	__u64 value;       /* bytes for send/recv, srtt in us for rtt */
	__u64 cgroup_id;   /* owner's cgroup v2 id; meaningless unless owner_known */
	__u8 saddr[16];    /* local address; IPv4 in the first 4 bytes */
	__u8 daddr[16];    /* remote address */
	__u16 sport;       /* local port, host order */
	__u16 dport;       /* remote port, host order */
	__u32 samples;     /* rtt: srtt changes this record stands for; else 0 */
	__u8 protocol;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3];
	char comm[TASK_COMM_LEN];
};

/* send, recv on a socket whose info user space has: 32 bytes instead of 112 */
struct netrec_data_event {
	__u32 kind;        /* RECORD_DATA | EVENT_SEND or EVENT_RECV */
	__u32 tid;
	__u64 ts_ns;       /* CLOCK_BOOTTIME */
	__u64 sock_id;
	__u64 bytes;
};

/* exec, exit */
struct netrec_proc_event {
	__u32 kind;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u64 ts_ns;
	__s32 exit_status; /* exit: raw wait(2) status */
	__u32 pad;
	__u64 cgroup_id;
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN]; /* exec only */
};

/* Arguments recorded per application call or USDT probe. */
#define CALL_ARGS 3

/*
 * call: one application function call (uprobe + uretprobe) or one USDT
 * start/done pair; usdt: one firing of a single USDT probe.
 */
struct netrec_call_event {
	__u32 kind;
	__u32 pid;
	__u32 tid;
	__u32 probe;       /* bpf cookie: index into the capture's probe list */
	__u64 ts_ns;       /* entry, CLOCK_BOOTTIME */
	__u64 duration_ns; /* entry to return; meaningless unless finished */
	__u64 cgroup_id;
	__s64 args[CALL_ARGS];
	__s64 retval;      /* uprobes only */
	__u32 depth;       /* calls of the same probe already running in this thread */
	__u8 finished;     /* 0: still running when the capture stopped */
	__u8 has_retval;
	__u8 pad[2];
	char comm[TASK_COMM_LEN];
};

#endif /* NETREC_H */
