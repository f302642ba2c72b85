//! The sockets user space knows: endpoints and owner as text, formatted once
//! per socket, for the small send/recv records that name a socket by id.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::abi::{data_count, netrec_sock_event};
use crate::cgroup::Cgroups;
use crate::event::c_str_bytes;

const AF_INET: u8 = 2;
const IPPROTO_UDP: u8 = 17;
/// How long a closed socket is kept at least: a data record that raced its
/// CLOSE on another CPU still finds it (the kernel re-announces a closed
/// socket before any later data), and so do its RTT counts and data
/// aggregates, taken from the kernel up to two intervals and a flush later.
const KEEP_CLOSED_NS: u64 = 10_000_000_000;
/// How long an idle socket is kept at least once the table is over its bound.
const KEEP_IDLE_NS: u64 = 60_000_000_000;

/// What every row of one socket carries, ready to append.
#[derive(Debug, Clone, PartialEq)]
pub struct SockText {
    /// None: the owner is unknown (never a guess).
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub comm: Option<Arc<str>>,
    /// The owner's cgroup v2 id and path (cgroup.rs); null with the owner.
    pub cgroup_id: Option<u64>,
    pub cgroup: Option<Arc<str>>,
    pub family: &'static str,
    pub protocol: &'static str,
    pub laddr: Arc<str>,
    pub lport: u16,
    /// None: a UDP datagram whose remote end is not known (an unconnected
    /// socket's, in an aggregate or when the caller did not ask for it).
    pub raddr: Option<Arc<str>>,
    pub rport: Option<u16>,
}

/// Times are CLOCK_BOOTTIME ns as of the last flush.
struct Entry {
    text: Arc<SockText>,
    raw: RawKey,
    last_used: u64,
    closed_at: Option<u64>,
}

/// The raw fields a SockText is made of: unchanged raw, unchanged text.
#[derive(PartialEq, Eq, Clone, Copy)]
struct RawKey {
    owner_known: bool,
    pid: u32,
    tid: u32,
    cgroup_id: u64,
    family: u8,
    protocol: u8,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    comm: [u8; 16],
}

impl RawKey {
    fn of(e: &netrec_sock_event) -> RawKey {
        RawKey {
            owner_known: e.owner_known != 0,
            pid: e.pid,
            tid: e.tid,
            cgroup_id: e.cgroup_id,
            family: e.family,
            protocol: e.protocol,
            saddr: e.saddr,
            daddr: e.daddr,
            sport: e.sport,
            dport: e.dport,
            comm: e.comm.map(|c| c as u8),
        }
    }
}

pub struct SocketTable {
    by_id: FxHashMap<u64, Entry>,
    keep_closed_ns: u64,
    keep_idle_ns: u64,
    /// CLOCK_BOOTTIME ns of the last flush.
    now: u64,
    bound: usize,
    addrs: TextCache<17>,
    comms: TextCache<16>,
    pub cgroups: Cgroups,
}

impl SocketTable {
    /// `bound`: sockets kept before idle ones are forgotten (the kernel's
    /// table size); `now`: CLOCK_BOOTTIME ns; `data_interval_ns`: how long
    /// the kernel's data aggregates may wait, so a socket outlives them.
    pub fn new(bound: usize, now: u64, data_interval_ns: u64) -> Self {
        SocketTable {
            by_id: FxHashMap::default(),
            keep_closed_ns: KEEP_CLOSED_NS.max(3 * data_interval_ns),
            keep_idle_ns: KEEP_IDLE_NS.max(3 * data_interval_ns),
            now,
            bound,
            addrs: TextCache::new(),
            comms: TextCache::new(),
            cgroups: Cgroups::detect(),
        }
    }

    /// The text of a full record's socket, and whether it differs from what
    /// the table had; learnt for later data records when the record names a
    /// tracked socket.
    pub fn learn(&mut self, e: &netrec_sock_event) -> (Arc<SockText>, bool) {
        let raw = RawKey::of(e);
        if e.sock_id == 0 {
            return (Arc::new(self.format(&raw)), true);
        }
        let now = self.now;
        if let Some(entry) = self.by_id.get_mut(&e.sock_id) {
            entry.last_used = now;
            if entry.raw == raw {
                return (Arc::clone(&entry.text), false);
            }
        }
        let text = Arc::new(self.format(&raw));
        let entry = Entry { text: Arc::clone(&text), raw, last_used: now, closed_at: None };
        self.by_id.insert(e.sock_id, entry);
        (text, true)
    }

    /// A CLOSE transition: the socket is forgotten `keep_closed_ns` later.
    pub fn closed(&mut self, sock_id: u64) {
        let now = self.now;
        if let Some(entry) = self.by_id.get_mut(&sock_id) {
            entry.closed_at = Some(now);
        }
    }

    pub fn get(&mut self, sock_id: u64) -> Option<&Arc<SockText>> {
        let now = self.now;
        self.by_id.get_mut(&sock_id).map(|entry| {
            entry.last_used = now;
            &entry.text
        })
    }

    /// Called once per flush with the time (CLOCK_BOOTTIME ns): forgets
    /// sockets closed long enough ago, and idle ones when over the bound.
    pub fn flushed(&mut self, now: u64) {
        self.now = now;
        let over = self.by_id.len() > self.bound;
        let (closed, idle) = (self.keep_closed_ns, self.keep_idle_ns);
        self.by_id.retain(|_, e| {
            e.closed_at.is_none_or(|c| now.saturating_sub(c) <= closed)
                && !(over && now.saturating_sub(e.last_used) > idle)
        });
    }

    /// The text of a data aggregate: it carries its owner and endpoints.
    pub fn aggregate_text(&mut self, pid: u32, c: &data_count) -> SockText {
        let raw = RawKey {
            owner_known: true,
            pid,
            tid: c.tid,
            cgroup_id: c.cgroup_id,
            family: c.family as u8,
            protocol: c.protocol,
            saddr: c.saddr,
            daddr: c.daddr,
            sport: c.lport,
            dport: c.rport,
            comm: c.comm.map(|b| b as u8),
        };
        self.format(&raw)
    }

    /// Sockets known now (open ones, and closed ones not yet forgotten).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    fn format(&mut self, raw: &RawKey) -> SockText {
        let v4 = raw.family == AF_INET;
        let family = if v4 { AF_INET } else { 0 };
        let known = raw.owner_known;
        let comm = known.then(|| self.comms.text(raw.comm, |k| c_str_bytes(k).into_owned()));
        let udp = raw.protocol == IPPROTO_UDP;
        let remote_known = !udp || raw.dport != 0;
        SockText {
            pid: known.then_some(raw.pid),
            tid: known.then_some(raw.tid),
            comm,
            cgroup_id: known.then_some(raw.cgroup_id),
            cgroup: if known { self.cgroups.path(raw.pid, raw.cgroup_id) } else { None },
            family: if v4 { "ipv4" } else { "ipv6" },
            protocol: if udp { "udp" } else { "tcp" },
            laddr: self.addrs.text(addr_key(family, &raw.saddr), format_addr),
            lport: raw.sport,
            raddr: remote_known.then(|| self.addrs.text(addr_key(family, &raw.daddr), format_addr)),
            rport: remote_known.then_some(raw.dport),
        }
    }
}

/// The text of raw values seen recently: addresses and command names repeat
/// across sockets. Direct-mapped: a hash picks the slot.
struct TextCache<const N: usize> {
    slots: Vec<Option<([u8; N], Arc<str>)>>,
}

impl<const N: usize> TextCache<N> {
    const SLOTS: usize = 256;

    fn new() -> Self {
        TextCache { slots: vec![None; Self::SLOTS] }
    }

    fn text(&mut self, key: [u8; N], format: impl FnOnce(&[u8; N]) -> String) -> Arc<str> {
        let slot = key.iter().fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize)) % Self::SLOTS;
        let entry = &mut self.slots[slot];
        if entry.as_ref().is_none_or(|(k, _)| *k != key) {
            *entry = Some((key, Arc::from(format(&key))));
        }
        Arc::clone(&entry.as_ref().expect("filled above").1)
    }
}

fn format_addr(key: &[u8; 17]) -> String {
    let raw: [u8; 16] = key[1..].try_into().expect("16 address bytes");
    if key[0] == AF_INET {
        Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string()
    } else {
        Ipv6Addr::from(raw).to_string()
    }
}

fn addr_key(family: u8, raw: &[u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = family;
    key[1..].copy_from_slice(raw);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cache_never_returns_another_keys_text() {
        let mut cache = TextCache::<17>::new();
        // More keys than slots, each looked up twice, in two orders.
        let keys: Vec<[u8; 16]> = (0..1000u32)
            .map(|i| {
                let mut raw = [0u8; 16];
                raw[..4].copy_from_slice(&(0x0a00_0000 + i * 7919).to_be_bytes());
                raw
            })
            .collect();
        for raw in keys.iter().chain(keys.iter().rev()) {
            let want = Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string();
            assert_eq!(&*cache.text(addr_key(AF_INET, raw), format_addr), want);
        }
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(&*cache.text(addr_key(0, &v6), format_addr), "2001:db8::1");
    }

    fn info(sock_id: u64, pid: u32, comm: &[u8]) -> netrec_sock_event {
        let mut e = netrec_sock_event {
            sock_id,
            pid,
            tid: pid,
            owner_known: 1,
            family: AF_INET,
            sport: 80,
            dport: 5000,
            protocol: 6,
            ..Default::default()
        };
        e.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        for (d, s) in e.comm.iter_mut().zip(comm) {
            *d = *s as i8;
        }
        e
    }

    #[test]
    fn a_new_owner_replaces_the_old_and_closed_sockets_are_forgotten_later() {
        let mut t = SocketTable::new(10, 0, 1_000_000_000);
        let (a, changed) = t.learn(&info(1, 7, b"nginx"));
        assert!(changed);
        assert_eq!(
            (a.pid, a.comm.as_deref(), &*a.laddr, a.rport, a.protocol),
            (Some(7), Some("nginx"), "127.0.0.1", Some(5000), "tcp")
        );
        let (b, _) = t.learn(&info(1, 8, b"worker"));
        assert_eq!(t.get(1).unwrap().pid, Some(8));
        assert!(!Arc::ptr_eq(&a, &b));
        // The same info again: the same text, not formatted anew.
        let (again, changed) = t.learn(&info(1, 8, b"worker"));
        assert!(Arc::ptr_eq(&b, &again) && !changed);
        t.closed(1);
        t.flushed(KEEP_CLOSED_NS);
        assert!(t.get(1).is_some(), "kept while its last records may still come");
        t.flushed(KEEP_CLOSED_NS + 1);
        assert!(t.get(1).is_none());
    }

    #[test]
    fn a_udp_datagram_of_unknown_peer_has_a_null_remote_end() {
        let mut t = SocketTable::new(10, 0, 1_000_000_000);
        let (known, _) = t.learn(&netrec_sock_event { protocol: IPPROTO_UDP, ..info(1, 7, b"dns") });
        assert_eq!((known.protocol, known.raddr.as_deref(), known.rport), ("udp", Some("10.0.0.2"), Some(5000)));
        let (unknown, changed) = t.learn(&netrec_sock_event { protocol: IPPROTO_UDP, dport: 0, ..info(1, 7, b"dns") });
        assert!(changed, "another remote end: new text for the rows after it");
        assert_eq!((unknown.raddr.as_deref(), unknown.rport, &*unknown.laddr), (None, None, "127.0.0.1"));
        // A TCP listener's remote port is 0, not unknown.
        let (listener, _) = t.learn(&netrec_sock_event { dport: 0, ..info(2, 7, b"nginx") });
        assert_eq!(listener.rport, Some(0));
    }

    #[test]
    fn an_unknown_owner_is_null_and_untracked_sockets_are_not_kept() {
        let mut t = SocketTable::new(10, 0, 1_000_000_000);
        let (text, _) = t.learn(&netrec_sock_event { owner_known: 0, sock_id: 0, family: 10, ..info(0, 9, b"x") });
        assert_eq!((text.pid, text.comm.clone(), text.family), (None, None, "ipv6"));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn idle_sockets_go_only_when_over_the_bound() {
        let mut t = SocketTable::new(2, 0, 1_000_000_000);
        for id in 1..=3 {
            t.learn(&info(id, 1, b"a"));
        }
        for s in 0..=60 {
            t.get(3);
            t.flushed(s * 1_000_000_000 + 1);
        }
        assert_eq!(t.len(), 1);
        assert!(t.get(3).is_some());
    }
}
