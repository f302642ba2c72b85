//! The BPF ABI in one place: the skeleton generated from bpf/netrec.bpf.c
//! (programs, maps, and the record types of bpf/netrec.h), the record types
//! as plain data, and the table of event kinds.

#[allow(clippy::all, dead_code, non_camel_case_types, non_snake_case, non_upper_case_globals, unused_imports)]
pub mod skel {
    include!(concat!(env!("OUT_DIR"), "/netrec.skel.rs"));
}

pub use skel::types::{
    data_count, data_key, event_kind, netrec_call_event, netrec_data_event, netrec_proc_event, netrec_sock_event,
    record_form, rtt_count, rtt_key,
};

// SAFETY: all are #[repr(C)] plain-old-data generated from bpf/netrec.h and bpf/netrec.bpf.c.
unsafe impl plain::Plain for netrec_sock_event {}
unsafe impl plain::Plain for netrec_proc_event {}
unsafe impl plain::Plain for netrec_call_event {}
unsafe impl plain::Plain for netrec_data_event {}
unsafe impl plain::Plain for rtt_key {}
unsafe impl plain::Plain for rtt_count {}
unsafe impl plain::Plain for data_key {}
unsafe impl plain::Plain for data_count {}
unsafe impl plain::Plain for skel::types::call_frame {}
unsafe impl plain::Plain for skel::types::call_frame_key {}
unsafe impl plain::Plain for skel::types::listener_key {}
unsafe impl plain::Plain for skel::types::owner {}

pub use netrec_schema::{Kind, PerKind};

/// The kernel's numbers for the schema's kinds (bpf/netrec.h `enum event_kind`).
pub trait RawKind: Sized {
    fn from_raw(raw: u32) -> Option<Self>;
    /// The kernel's number for this kind (index of its loss counter).
    fn raw(self) -> u32;
}

impl RawKind for Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        Some(match event_kind(raw) {
            event_kind::EVENT_SEND => Kind::Send,
            event_kind::EVENT_RECV => Kind::Recv,
            event_kind::EVENT_STATE => Kind::State,
            event_kind::EVENT_RTT => Kind::Rtt,
            event_kind::EVENT_RETRANSMIT => Kind::Retransmit,
            event_kind::EVENT_EXEC => Kind::Exec,
            event_kind::EVENT_EXIT => Kind::Exit,
            event_kind::EVENT_CALL => Kind::Call,
            event_kind::EVENT_USDT => Kind::Usdt,
            event_kind::EVENT_ACCEPT => Kind::Accept,
            _ => return None,
        })
    }

    fn raw(self) -> u32 {
        match self {
            Kind::Send => event_kind::EVENT_SEND.0,
            Kind::Recv => event_kind::EVENT_RECV.0,
            Kind::State => event_kind::EVENT_STATE.0,
            Kind::Rtt => event_kind::EVENT_RTT.0,
            Kind::Retransmit => event_kind::EVENT_RETRANSMIT.0,
            Kind::Exec => event_kind::EVENT_EXEC.0,
            Kind::Exit => event_kind::EVENT_EXIT.0,
            Kind::Call => event_kind::EVENT_CALL.0,
            Kind::Usdt => event_kind::EVENT_USDT.0,
            Kind::Accept => event_kind::EVENT_ACCEPT.0,
        }
    }
}
