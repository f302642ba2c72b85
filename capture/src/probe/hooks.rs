//! Which kernel hook feeds each probe. Every probe has a tracepoint program;
//! most also have fentry and kprobe programs sharing its body in
//! bpf/netrec.bpf.c. `--attach auto` takes, probe by probe, the first of
//! tracepoint, fentry, kprobe this kernel offers; `--attach X` takes X for
//! every probe that has it.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{bail, Result};
use libbpf_rs::btf::types::{Func as BtfFunc, FuncProto};
use libbpf_rs::btf::Btf;
use libbpf_rs::libbpf_sys;

use libbpf_rs::{OpenProgramMut, ProgramMut};

use crate::abi::skel::{NetrecProgs, OpenNetrecProgs};
use crate::cli::Attach;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Tracepoint,
    Fentry,
    Kprobe,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Tracepoint => "tracepoint",
            Mechanism::Fentry => "fentry",
            Mechanism::Kprobe => "kprobe",
        })
    }
}

/// What a program needs from the running kernel.
#[derive(Debug, Clone, Copy)]
enum Needs {
    /// A tracepoint, which BTF lists as the typedef `btf_trace_<name>`.
    Tp(&'static str),
    /// A syscall tracepoint under tracefs `events/syscalls/`.
    SyscallTp(&'static str),
    /// A kernel function taking one of these numbers of parameters.
    Func(&'static str, &'static [usize]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Required,
    /// Loaded when the kernel has it, skipped otherwise (tcp_sendpage left in 6.5).
    Optional,
    /// One of a hook's variants for different signatures must load.
    Variant,
}

/// A program of the skeleton, reached through its typed field: renaming
/// one in bpf/netrec.bpf.c fails to compile here rather than at run time.
#[derive(Clone, Copy)]
pub struct ProgRef {
    /// The program's name in bpf/netrec.bpf.c.
    pub name: &'static str,
    pub open: for<'a, 'obj> fn(&'a mut OpenNetrecProgs<'obj>) -> &'a mut OpenProgramMut<'obj>,
    pub loaded: for<'a, 'obj> fn(&'a mut NetrecProgs<'obj>) -> &'a mut ProgramMut<'obj>,
}

impl fmt::Debug for ProgRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The skeleton's program `$name`.
macro_rules! prog_ref {
    ($name:ident) => {
        ProgRef { name: stringify!($name), open: |p| &mut p.$name, loaded: |p| &mut p.$name }
    };
}

#[derive(Debug)]
pub struct Program {
    pub prog: ProgRef,
    needs: Needs,
    role: Role,
}

impl Program {
    pub fn name(&self) -> &'static str {
        self.prog.name
    }
}

const fn prog(prog: ProgRef, needs: Needs) -> Program {
    Program { prog, needs, role: Role::Required }
}

const fn optional(prog: ProgRef, needs: Needs) -> Program {
    Program { prog, needs, role: Role::Optional }
}

const fn variant(prog: ProgRef, needs: Needs) -> Program {
    Program { prog, needs, role: Role::Variant }
}

#[derive(Debug)]
pub struct Hook {
    pub probe: &'static str,
    pub mechanism: Mechanism,
    programs: &'static [Program],
}

use Mechanism::*;
use Needs::*;

/// Probes in the order they are attached; within a probe, preference order.
/// send and recv cover TCP and UDP: the sock_*_length tracepoints see both
/// (an unconnected UDP socket's datagram takes its address from the syscall,
/// whose exit the syscall tracepoints see); fentry and kprobes add the UDP
/// functions to the TCP ones.
const HOOKS: &[Hook] = &[
    Hook {
        probe: "send",
        mechanism: Tracepoint,
        programs: &[
            prog(prog_ref!(sock_send_length), Tp("sock_send_length")),
            optional(prog_ref!(sendmmsg_exit), SyscallTp("sys_exit_sendmmsg")),
        ],
    },
    Hook {
        probe: "send",
        mechanism: Fentry,
        programs: &[
            prog(prog_ref!(fexit_tcp_sendmsg), Func("tcp_sendmsg", &[3])),
            optional(prog_ref!(fexit_tcp_sendpage), Func("tcp_sendpage", &[5])),
            optional(prog_ref!(fexit_udp_sendmsg), Func("udp_sendmsg", &[3])),
            optional(prog_ref!(fexit_udpv6_sendmsg), Func("udpv6_sendmsg", &[3])),
        ],
    },
    Hook {
        probe: "send",
        mechanism: Kprobe,
        programs: &[
            prog(prog_ref!(kretprobe_tcp_sendmsg), Func("tcp_sendmsg", &[3])),
            prog(prog_ref!(kprobe_tcp_sendmsg), Func("tcp_sendmsg", &[3])),
            optional(prog_ref!(kretprobe_tcp_sendpage), Func("tcp_sendpage", &[5])),
            optional(prog_ref!(kprobe_tcp_sendpage), Func("tcp_sendpage", &[5])),
            optional(prog_ref!(kretprobe_udp_sendmsg), Func("udp_sendmsg", &[3])),
            optional(prog_ref!(kprobe_udp_sendmsg), Func("udp_sendmsg", &[3])),
            optional(prog_ref!(kretprobe_udpv6_sendmsg), Func("udpv6_sendmsg", &[3])),
            optional(prog_ref!(kprobe_udpv6_sendmsg), Func("udpv6_sendmsg", &[3])),
        ],
    },
    Hook {
        probe: "recv",
        mechanism: Tracepoint,
        programs: &[
            prog(prog_ref!(sock_recv_length), Tp("sock_recv_length")),
            optional(prog_ref!(recvfrom_exit), SyscallTp("sys_exit_recvfrom")),
            optional(prog_ref!(recvmsg_exit), SyscallTp("sys_exit_recvmsg")),
            optional(prog_ref!(recvmmsg_exit), SyscallTp("sys_exit_recvmmsg")),
        ],
    },
    Hook {
        probe: "recv",
        mechanism: Fentry,
        programs: &[
            variant(prog_ref!(fexit_tcp_recvmsg), Func("tcp_recvmsg", &[5])),
            variant(prog_ref!(fexit_tcp_recvmsg_nonblock), Func("tcp_recvmsg", &[6])),
            optional(prog_ref!(fentry_skb_consume_udp), Func("skb_consume_udp", &[3])),
        ],
    },
    Hook {
        probe: "recv",
        mechanism: Kprobe,
        // tcp_splice_read's mark keeps a splice from being taken for the
        // thread's last recvmsg; it counts only if recv_splice is kprobe too.
        programs: &[
            prog(prog_ref!(kprobe_tcp_cleanup_rbuf), Func("tcp_cleanup_rbuf", &[2])),
            prog(prog_ref!(kprobe_tcp_recvmsg), Func("tcp_recvmsg", &[5, 6])),
            prog(prog_ref!(kprobe_tcp_splice_read), Func("tcp_splice_read", &[5])),
            optional(prog_ref!(kprobe_skb_consume_udp), Func("skb_consume_udp", &[3])),
        ],
    },
    Hook {
        probe: "recv_splice",
        mechanism: Tracepoint,
        programs: &[
            prog(prog_ref!(splice_exit), SyscallTp("sys_exit_splice")),
            prog(prog_ref!(tcp_rcv_space_adjust), Tp("tcp_rcv_space_adjust")),
            prog(prog_ref!(splice_enter), SyscallTp("sys_enter_splice")),
        ],
    },
    Hook {
        probe: "recv_splice",
        mechanism: Fentry,
        programs: &[prog(prog_ref!(fexit_tcp_splice_read), Func("tcp_splice_read", &[5]))],
    },
    Hook {
        probe: "recv_splice",
        mechanism: Kprobe,
        programs: &[
            prog(prog_ref!(kprobe_tcp_cleanup_rbuf), Func("tcp_cleanup_rbuf", &[2])),
            prog(prog_ref!(kprobe_tcp_splice_read), Func("tcp_splice_read", &[5])),
        ],
    },
    Hook {
        probe: "state",
        mechanism: Tracepoint,
        programs: &[prog(prog_ref!(inet_sock_set_state), Tp("inet_sock_set_state"))],
    },
    Hook {
        probe: "state",
        mechanism: Fentry,
        programs: &[
            prog(prog_ref!(fentry_tcp_set_state), Func("tcp_set_state", &[2])),
            variant(prog_ref!(fexit_inet_csk_listen_start), Func("inet_csk_listen_start", &[1])),
            variant(prog_ref!(fexit_inet_csk_listen_start_backlog), Func("inet_csk_listen_start", &[2])),
            prog(prog_ref!(fexit_inet_csk_clone_lock), Func("inet_csk_clone_lock", &[3])),
        ],
    },
    Hook {
        probe: "state",
        mechanism: Kprobe,
        programs: &[
            prog(prog_ref!(kprobe_tcp_set_state), Func("tcp_set_state", &[2])),
            prog(prog_ref!(kretprobe_inet_csk_listen_start), Func("inet_csk_listen_start", &[1, 2])),
            prog(prog_ref!(kprobe_inet_csk_listen_start), Func("inet_csk_listen_start", &[1, 2])),
            prog(prog_ref!(kretprobe_inet_csk_clone_lock), Func("inet_csk_clone_lock", &[3])),
        ],
    },
    // Syscall tracepoints put every syscall of every task on the slow path:
    // accept prefers fentry and kprobes, which cost only when a connection is accepted.
    Hook {
        probe: "accept",
        mechanism: Fentry,
        programs: &[
            variant(prog_ref!(fexit_inet_csk_accept), Func("inet_csk_accept", &[2])),
            variant(prog_ref!(fexit_inet_csk_accept_flags), Func("inet_csk_accept", &[4])),
        ],
    },
    Hook {
        probe: "accept",
        mechanism: Kprobe,
        programs: &[prog(prog_ref!(kretprobe_inet_csk_accept), Func("inet_csk_accept", &[2, 4]))],
    },
    Hook {
        probe: "accept",
        mechanism: Tracepoint,
        programs: &[
            prog(prog_ref!(accept4_exit), SyscallTp("sys_exit_accept4")),
            prog(prog_ref!(accept_exit), SyscallTp("sys_exit_accept")),
        ],
    },
    Hook { probe: "rtt", mechanism: Tracepoint, programs: &[prog(prog_ref!(tcp_probe), Tp("tcp_probe"))] },
    Hook {
        probe: "rtt",
        mechanism: Fentry,
        programs: &[prog(prog_ref!(fentry_tcp_rcv_established), Func("tcp_rcv_established", &[2]))],
    },
    Hook {
        probe: "rtt",
        mechanism: Kprobe,
        programs: &[prog(prog_ref!(kprobe_tcp_rcv_established), Func("tcp_rcv_established", &[2]))],
    },
    Hook {
        probe: "retransmit",
        mechanism: Tracepoint,
        programs: &[prog(prog_ref!(tcp_retransmit_skb), Tp("tcp_retransmit_skb"))],
    },
    Hook {
        probe: "retransmit",
        mechanism: Fentry,
        programs: &[prog(prog_ref!(fexit_tcp_retransmit_skb), Func("tcp_retransmit_skb", &[3]))],
    },
    Hook {
        probe: "retransmit",
        mechanism: Kprobe,
        programs: &[
            prog(prog_ref!(kretprobe_tcp_retransmit_skb), Func("tcp_retransmit_skb", &[3])),
            prog(prog_ref!(kprobe_tcp_retransmit_skb), Func("tcp_retransmit_skb", &[3])),
        ],
    },
    Hook {
        probe: "exec",
        mechanism: Tracepoint,
        programs: &[prog(prog_ref!(sched_process_exec), Tp("sched_process_exec"))],
    },
    Hook {
        probe: "exit",
        mechanism: Tracepoint,
        programs: &[prog(prog_ref!(sched_process_exit), Tp("sched_process_exit"))],
    },
];

/// Every program this table manages (the application-call programs are not here).
pub fn managed() -> impl Iterator<Item = &'static Program> {
    HOOKS.iter().flat_map(|h| h.programs)
}

/// What the planner knows of a kernel: plain facts (the tracepoints,
/// syscall tracepoints and functions the table names that exist, kprobes,
/// fentry), so a plan can be made for any kernel, this one or a test's.
pub struct Kernel {
    pub release: String,
    pub tracepoints: BTreeSet<&'static str>,
    pub syscall_tracepoints: BTreeSet<&'static str>,
    /// Function -> its number of parameters (BTF).
    pub functions: BTreeMap<&'static str, usize>,
    pub kprobes: bool,
    /// bpf_get_attach_cookie exists (5.15): uprobes can tell their probe apart.
    pub cookies: bool,
    /// Why fentry programs cannot be used, if they cannot. On a live kernel
    /// this takes a test load, made only when a probe gets as far as fentry
    /// (never on kernels >= 6.3 with auto).
    fentry_refused: OnceCell<Option<String>>,
    fentry_probe: Option<Box<dyn Fn() -> Option<String>>>,
}

impl Kernel {
    /// The running kernel's facts, from its BTF and tracefs.
    pub fn inspect(tracefs_events: &'static Path) -> Result<Kernel> {
        if !Path::new("/sys/kernel/btf/vmlinux").exists() {
            bail!(
                "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): \
                 netrec needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020)"
            );
        }
        let btf = Btf::from_vmlinux().map_err(|e| anyhow::anyhow!("reading /sys/kernel/btf/vmlinux: {e}"))?;
        let (mut tracepoints, mut syscall_tracepoints, mut functions) =
            (BTreeSet::new(), BTreeSet::new(), BTreeMap::new());
        for needs in HOOKS.iter().flat_map(|h| h.programs).map(|p| p.needs) {
            match needs {
                Tp(name) => {
                    if btf.type_by_name::<libbpf_rs::btf::BtfType<'_>>(&format!("btf_trace_{name}")).is_some() {
                        tracepoints.insert(name);
                    }
                }
                SyscallTp(name) => {
                    if tracefs_events.join("syscalls").join(name).is_dir() {
                        syscall_tracepoints.insert(name);
                    }
                }
                Func(name, _) => {
                    let params = btf
                        .type_by_name::<BtfFunc<'_>>(name)
                        .and_then(|f| f.next_type())
                        .and_then(|t| FuncProto::try_from(t).ok())
                        .map(|p| p.len());
                    if let Some(n) = params {
                        functions.insert(name, n);
                    }
                }
            }
        }
        // libbpf attaches kprobes through this PMU, or through tracefs on old kernels.
        let kprobes = Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
            || tracefs_events.parent().is_some_and(|t| t.join("kprobe_events").exists());
        // The kernel's helper list is in its BTF (enum bpf_func_id).
        let cookies = btf
            .type_by_name::<libbpf_rs::btf::types::Enum<'_>>("bpf_func_id")
            .is_some_and(|e| e.iter().any(|m| m.name.is_some_and(|n| n == "BPF_FUNC_get_attach_cookie")));
        Ok(Kernel {
            release: crate::host::kernel_release(),
            tracepoints,
            syscall_tracepoints,
            functions,
            kprobes,
            cookies,
            fentry_refused: OnceCell::new(),
            fentry_probe: Some(Box::new(move || fentry_refusal(&btf))),
        })
    }

    /// A kernel described by its facts; `fentry_refused`: None if fentry works.
    #[cfg(test)]
    pub fn described(
        release: &str,
        tracepoints: &[&'static str],
        syscall_tracepoints: &[&'static str],
        functions: &[(&'static str, usize)],
        kprobes: bool,
        fentry_refused: Option<&str>,
    ) -> Kernel {
        Kernel {
            release: release.into(),
            tracepoints: tracepoints.iter().copied().collect(),
            syscall_tracepoints: syscall_tracepoints.iter().copied().collect(),
            functions: functions.iter().copied().collect(),
            kprobes,
            cookies: true,
            fentry_refused: OnceCell::from(fentry_refused.map(String::from)),
            fentry_probe: None,
        }
    }

    fn params(&self, function: &str) -> Option<usize> {
        self.functions.get(function).copied()
    }

    /// Why `mechanism` is unavailable on this kernel as a whole.
    fn refusal(&self, mechanism: Mechanism) -> Option<String> {
        match mechanism {
            Tracepoint => None,
            Fentry => self.fentry_refused.get_or_init(|| self.fentry_probe.as_ref().and_then(|probe| probe())).clone(),
            Kprobe if !self.kprobes => Some("this kernel has no kprobes (CONFIG_KPROBES is off)".into()),
            Kprobe => None,
        }
    }

    /// Why this program cannot load here, if it cannot.
    fn missing(&self, needs: Needs) -> Option<String> {
        match needs {
            Tp(name) => (!self.tracepoints.contains(name)).then(|| format!("no {name} tracepoint")),
            SyscallTp(name) => {
                (!self.syscall_tracepoints.contains(name)).then(|| format!("no syscalls:{name} tracepoint"))
            }
            Func(name, counts) => match self.params(name) {
                None => Some(format!("no {name}() in the kernel's BTF")),
                Some(n) if !counts.contains(&n) => {
                    Some(format!("{name}() takes {n} parameters here, netrec knows {counts:?}"))
                }
                Some(_) => None,
            },
        }
    }
}

/// Loads a two-instruction fentry program on tcp_sendmsg, as libbpf-tools'
/// fentry_can_attach() does: some kernels have the BTF but refuse the
/// program type (no ftrace direct calls, or a security policy).
fn fentry_refusal(btf: &Btf<'static>) -> Option<String> {
    let Some(target) = btf.type_by_name::<BtfFunc<'_>>("tcp_sendmsg") else {
        return Some("no tcp_sendmsg() in the kernel's BTF".into());
    };
    // r0 = 0; exit
    let insns = [
        libbpf_sys::bpf_insn {
            code: 0xb7,
            _bitfield_align_1: [],
            _bitfield_1: libbpf_sys::bpf_insn::new_bitfield_1(0, 0),
            off: 0,
            imm: 0,
        },
        libbpf_sys::bpf_insn {
            code: 0x95,
            _bitfield_align_1: [],
            _bitfield_1: libbpf_sys::bpf_insn::new_bitfield_1(0, 0),
            off: 0,
            imm: 0,
        },
    ];
    let mut opts = libbpf_sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as _,
        expected_attach_type: libbpf_sys::BPF_TRACE_FENTRY,
        attach_btf_id: u32::from(target.type_id()),
        ..Default::default()
    };
    // SAFETY: valid instructions and options that outlive the call.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_TRACING,
            std::ptr::null(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            &mut opts,
        )
    };
    if fd < 0 {
        let err = std::io::Error::from_raw_os_error(-fd);
        return Some(format!("this kernel refuses fentry programs ({err})"));
    }
    // SAFETY: we own the descriptor.
    unsafe { libc::close(fd) };
    None
}

/// The hooks chosen for this capture.
pub struct Plan {
    pub hooks: Vec<(&'static Hook, Vec<&'static Program>)>,
    pub recvmsg_nargs: u32,
    pub kprobe_counts_splice: bool,
}

impl Plan {
    pub fn loads(&self, program: &str) -> bool {
        self.hooks.iter().flat_map(|(_, ps)| ps).any(|p| p.name() == program)
    }
}

/// Picks one hook per probe, or says in one line why a probe cannot be recorded.
pub fn plan(attach: Attach, kernel: &Kernel) -> Result<Plan> {
    let mut probes: Vec<&str> = HOOKS.iter().map(|h| h.probe).collect();
    probes.dedup();
    let forced = match attach {
        Attach::Auto => None,
        Attach::Tracepoint => Some(Tracepoint),
        Attach::Fentry => Some(Fentry),
        Attach::Kprobe => Some(Kprobe),
    };
    let mut hooks = Vec::new();
    for probe in probes {
        let offered: Vec<&Hook> = HOOKS.iter().filter(|h| h.probe == probe).collect();
        let candidates: Vec<&Hook> = match forced {
            None => offered,
            Some(m) if offered.iter().any(|h| h.mechanism == m) => {
                offered.into_iter().filter(|h| h.mechanism == m).collect()
            }
            // exec and exit have tracepoints only, on every kernel.
            Some(_) => offered.into_iter().filter(|h| h.mechanism == Tracepoint).collect(),
        };
        let mut refusals = Vec::new();
        let mut chosen = None;
        for hook in candidates {
            match usable(hook, kernel) {
                Ok(programs) => {
                    chosen = Some((hook, programs));
                    break;
                }
                Err(why) => refusals.push(format!("{}: {why}", hook.mechanism)),
            }
        }
        match chosen {
            Some(c) => hooks.push(c),
            None => bail!(
                "{}cannot record {probe} on this kernel ({}): {}",
                forced.map(|m| format!("--attach {m}: ")).unwrap_or_default(),
                kernel.release,
                refusals.join("; ")
            ),
        }
    }
    let nargs = |f: &str, default: usize| kernel.params(f).unwrap_or(default) as u32;
    let kprobe_counts_splice = hooks.iter().any(|(h, _)| h.probe == "recv_splice" && h.mechanism == Kprobe);
    Ok(Plan { hooks, recvmsg_nargs: nargs("tcp_recvmsg", 5), kprobe_counts_splice })
}

fn usable(hook: &'static Hook, kernel: &Kernel) -> Result<Vec<&'static Program>, String> {
    if let Some(why) = kernel.refusal(hook.mechanism) {
        return Err(why);
    }
    let mut programs = Vec::new();
    let mut variant_missing = None;
    for p in hook.programs {
        match (kernel.missing(p.needs), p.role) {
            (None, _) => programs.push(p),
            (Some(_), Role::Optional) => {}
            (Some(why), Role::Variant) => variant_missing = Some(why),
            (Some(why), Role::Required) => return Err(why),
        }
    }
    let has_variants = hook.programs.iter().any(|p| p.role == Role::Variant);
    if has_variants && !programs.iter().any(|p| p.role == Role::Variant) {
        return Err(variant_missing.unwrap_or_default());
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tracepoints every kernel here has (4.16 and later).
    const BASE_TPS: &[&str] = &[
        "inet_sock_set_state",
        "tcp_probe",
        "tcp_retransmit_skb",
        "tcp_rcv_space_adjust",
        "sched_process_exec",
        "sched_process_exit",
    ];
    const SYSCALL_TPS: &[&str] = &[
        "sys_enter_splice",
        "sys_exit_splice",
        "sys_exit_accept4",
        "sys_exit_accept",
        "sys_exit_sendmmsg",
        "sys_exit_recvfrom",
        "sys_exit_recvmsg",
        "sys_exit_recvmmsg",
    ];

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        BASE_TPS.iter().chain(extra).copied().collect()
    }

    /// The functions the table names, with their parameter counts: `old` for
    /// kernels before 5.19 (tcp_recvmsg with `nonblock`, inet_csk_listen_start
    /// with the backlog), `sendpage` until 6.5.
    fn functions(old: bool, sendpage: bool) -> Vec<(&'static str, usize)> {
        let mut f = vec![
            ("tcp_sendmsg", 3),
            ("tcp_recvmsg", if old { 6 } else { 5 }),
            ("tcp_splice_read", 5),
            ("tcp_cleanup_rbuf", 2),
            ("tcp_set_state", 2),
            ("inet_csk_listen_start", if old { 2 } else { 1 }),
            ("inet_csk_clone_lock", 3),
            ("inet_csk_accept", if old { 4 } else { 2 }),
            ("tcp_rcv_established", 2),
            ("tcp_retransmit_skb", 3),
            ("udp_sendmsg", 3),
            ("udpv6_sendmsg", 3),
            ("skb_consume_udp", 3),
        ];
        if sendpage {
            f.push(("tcp_sendpage", 5));
        }
        f
    }

    fn k5_10() -> Kernel {
        Kernel::described("5.10.0-32-cloud-amd64", BASE_TPS, SYSCALL_TPS, &functions(true, true), true, None)
    }
    fn k6_1() -> Kernel {
        Kernel::described("6.1.0-28-cloud-amd64", BASE_TPS, SYSCALL_TPS, &functions(false, true), true, None)
    }
    fn k6_12() -> Kernel {
        let tps = with(&["sock_send_length", "sock_recv_length"]);
        Kernel::described("6.12.12-cloud-amd64", &tps, SYSCALL_TPS, &functions(false, false), true, None)
    }
    /// This machine's: no kprobes, fentry refused.
    fn k6_18() -> Kernel {
        let tps = with(&["sock_send_length", "sock_recv_length"]);
        let refused = Some("this kernel refuses fentry programs (Operation not permitted (os error 1))");
        Kernel::described("6.18.44", &tps, SYSCALL_TPS, &functions(false, false), false, refused)
    }

    /// probe -> (mechanism, programs) of a plan.
    fn chosen(plan: &Plan) -> BTreeMap<&'static str, (Mechanism, Vec<&'static str>)> {
        plan.hooks.iter().map(|(h, ps)| (h.probe, (h.mechanism, ps.iter().map(|p| p.name()).collect()))).collect()
    }

    #[test]
    fn auto_takes_tracepoints_then_fentry_then_kprobes_per_kernel() {
        // (kernel, mechanism for send/recv/recv_splice, for state/rtt/retransmit)
        let table: [(Kernel, Mechanism, Mechanism); 4] = [
            (k5_10(), Fentry, Tracepoint),
            (k6_1(), Fentry, Tracepoint),
            (k6_12(), Tracepoint, Tracepoint),
            (k6_18(), Tracepoint, Tracepoint),
        ];
        for (kernel, data, others) in &table {
            let plan = plan(Attach::Auto, kernel).unwrap_or_else(|e| panic!("{}: {e}", kernel.release));
            let c = chosen(&plan);
            for probe in ["send", "recv"] {
                assert_eq!(c[probe].0, *data, "{} {probe}", kernel.release);
            }
            for probe in ["state", "rtt", "retransmit", "exec", "exit"] {
                assert_eq!(c[probe].0, *others, "{} {probe}", kernel.release);
            }
            assert!(!plan.kprobe_counts_splice);
        }
        // Before 5.19 tcp_recvmsg takes nonblock: the other fexit variant, and the kprobe reads flags from arg 5.
        // UDP rides with TCP: its functions beside fentry's and kprobes', the
        // syscall exits (datagram addresses) beside the tracepoints.
        let old = plan(Attach::Auto, &k5_10()).unwrap();
        assert_eq!(chosen(&old)["recv"].1, ["fexit_tcp_recvmsg_nonblock", "fentry_skb_consume_udp"]);
        assert_eq!(old.recvmsg_nargs, 6);
        assert_eq!(
            chosen(&plan(Attach::Auto, &k6_1()).unwrap())["recv"].1,
            ["fexit_tcp_recvmsg", "fentry_skb_consume_udp"]
        );
        // sendfile goes through tcp_sendpage until 6.5.
        assert_eq!(
            chosen(&old)["send"].1,
            ["fexit_tcp_sendmsg", "fexit_tcp_sendpage", "fexit_udp_sendmsg", "fexit_udpv6_sendmsg"]
        );
        assert_eq!(chosen(&plan(Attach::Auto, &k6_12()).unwrap())["send"].1, ["sock_send_length", "sendmmsg_exit"]);
        assert_eq!(
            chosen(&plan(Attach::Auto, &k6_18()).unwrap())["recv"].1,
            ["sock_recv_length", "recvfrom_exit", "recvmsg_exit", "recvmmsg_exit"]
        );
        // accept: fentry or kprobes wherever they work (syscall tracepoints slow every syscall down).
        assert_eq!(chosen(&old)["accept"], (Fentry, vec!["fexit_inet_csk_accept_flags"]));
        assert_eq!(chosen(&plan(Attach::Auto, &k6_12()).unwrap())["accept"], (Fentry, vec!["fexit_inet_csk_accept"]));
        assert_eq!(
            chosen(&plan(Attach::Auto, &k6_18()).unwrap())["accept"],
            (Tracepoint, vec!["accept4_exit", "accept_exit"])
        );
    }

    #[test]
    fn forcing_a_mechanism_takes_it_wherever_a_probe_has_it() {
        let kprobe = plan(Attach::Kprobe, &k6_12()).unwrap();
        let c = chosen(&kprobe);
        for probe in ["send", "recv", "recv_splice", "state", "rtt", "retransmit"] {
            assert_eq!(c[probe].0, Kprobe, "{probe}");
        }
        assert_eq!(c["exec"].0, Tracepoint, "exec has a tracepoint only");
        assert!(kprobe.kprobe_counts_splice);
        assert!(!c["send"].1.contains(&"kprobe_tcp_sendpage"), "6.12 has no tcp_sendpage");
        assert!(chosen(&plan(Attach::Kprobe, &k6_1()).unwrap())["send"].1.contains(&"kprobe_tcp_sendpage"));
        let fentry = chosen(&plan(Attach::Fentry, &k5_10()).unwrap());
        assert_eq!(
            fentry["state"].1,
            ["fentry_tcp_set_state", "fexit_inet_csk_listen_start_backlog", "fexit_inet_csk_clone_lock"]
        );
    }

    #[test]
    fn a_probe_nothing_can_serve_is_one_line_naming_why() {
        let err = |attach, kernel: &Kernel| plan(attach, kernel).err().map(|e| e.to_string()).unwrap_or_default();
        let e = err(Attach::Tracepoint, &k6_1());
        assert!(e.starts_with("--attach tracepoint: cannot record send on this kernel (6.1.0-28-cloud-amd64)"), "{e}");
        assert!(e.contains("no sock_send_length tracepoint") && !e.contains('\n'), "{e}");
        let e = err(Attach::Kprobe, &k6_18());
        assert!(e.contains("this kernel has no kprobes (CONFIG_KPROBES is off)"), "{e}");
        let e = err(Attach::Fentry, &k6_18());
        assert!(e.contains("refuses fentry programs"), "{e}");
        // A kernel whose tcp_recvmsg has a signature netrec does not know.
        let mut odd = functions(false, false);
        odd.retain(|(f, _)| *f != "tcp_recvmsg");
        odd.push(("tcp_recvmsg", 7));
        let e = err(Attach::Auto, &Kernel::described("9.9", BASE_TPS, SYSCALL_TPS, &odd, true, None));
        assert!(
            e.contains("cannot record recv") && e.contains("tcp_recvmsg() takes 7 parameters here, netrec knows"),
            "{e}"
        );
    }
}
