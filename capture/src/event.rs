//! Ring-buffer records, decoded from the skeleton's generated types.

use crate::abi::{
    netrec_call_event, netrec_data_event, netrec_proc_event, netrec_sock_event, record_form, rtt_count, rtt_key, Kind,
    RawKind,
};

pub enum Record<'a> {
    /// A full socket record: state, rtt, retransmit, or a send/recv the
    /// kernel could not send small.
    Sock(Kind, &'a netrec_sock_event),
    /// A socket's endpoints and owner, for the small records after it; no row.
    SockInfo(&'a netrec_sock_event),
    /// A send or receive naming its socket by id.
    Data(Kind, &'a netrec_data_event),
    /// A socket's srtt changes of one second in one bucket (read from the
    /// kernel's table, not the ring buffer): one rtt row.
    RttCount(&'a rtt_key, &'a rtt_count),
    Proc(Kind, &'a netrec_proc_event),
    Call(Kind, &'a netrec_call_event),
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort,
    UnknownKind(u32),
}

pub fn decode(data: &[u8]) -> Result<Record<'_>, DecodeError> {
    let raw = data.get(..4).ok_or(DecodeError::TooShort)?;
    let raw = u32::from_ne_bytes(raw.try_into().expect("4 bytes"));
    let form = raw & !record_form::RECORD_KIND_MASK.0;
    if form == record_form::RECORD_SOCK_INFO.0 {
        return plain::from_bytes(data).map(Record::SockInfo).map_err(|_| DecodeError::TooShort);
    }
    let kind = Kind::from_raw(raw & record_form::RECORD_KIND_MASK.0).ok_or(DecodeError::UnknownKind(raw))?;
    if form == record_form::RECORD_DATA.0 && matches!(kind, Kind::Send | Kind::Recv) {
        return plain::from_bytes(data).map(|e| Record::Data(kind, e)).map_err(|_| DecodeError::TooShort);
    }
    if form != 0 {
        return Err(DecodeError::UnknownKind(raw));
    }
    match kind {
        Kind::Exec | Kind::Exit => {
            plain::from_bytes(data).map(|e| Record::Proc(kind, e)).map_err(|_| DecodeError::TooShort)
        }
        Kind::Call | Kind::Usdt => {
            plain::from_bytes(data).map(|e| Record::Call(kind, e)).map_err(|_| DecodeError::TooShort)
        }
        _ => plain::from_bytes(data).map(|e| Record::Sock(kind, e)).map_err(|_| DecodeError::TooShort),
    }
}

/// A NUL-terminated kernel string as text (lossy: comm may hold any bytes).
pub fn c_str(bytes: &[i8]) -> std::borrow::Cow<'_, str> {
    // SAFETY: i8 and u8 have the same layout.
    c_str_bytes(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) })
}

/// Text up to the first NUL, invalid UTF-8 replaced.
pub fn c_str_bytes(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

/// Linux TCP state numbers (include/net/tcp_states.h).
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::event_kind;

    fn bytes_of<T: Copy>(v: &T) -> Vec<u64> {
        // u64 storage keeps the buffer 8-byte aligned like the ring buffer's.
        let mut buf = vec![0u64; std::mem::size_of::<T>().div_ceil(8)];
        unsafe {
            std::ptr::copy_nonoverlapping(
                v as *const T as *const u8,
                buf.as_mut_ptr() as *mut u8,
                std::mem::size_of::<T>(),
            )
        };
        buf
    }

    fn as_bytes(buf: &[u64], len: usize) -> &[u8] {
        unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, len) }
    }

    #[test]
    fn decodes_a_send_record() {
        let e = netrec_sock_event { kind: event_kind::EVENT_SEND.0, pid: 42, value: 1000, ..Default::default() };
        let buf = bytes_of(&e);
        match decode(as_bytes(&buf, std::mem::size_of_val(&e))).unwrap() {
            Record::Sock(Kind::Send, got) => {
                assert_eq!(got.pid, 42);
                assert_eq!(got.value, 1000);
            }
            _ => panic!("wrong record"),
        }
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let buf = [0u64; 1];
        assert_eq!(decode(as_bytes(&buf, 2)).err(), Some(DecodeError::TooShort));
        let mut e = netrec_sock_event { kind: 99, ..Default::default() };
        let buf = bytes_of(&e);
        assert_eq!(decode(as_bytes(&buf, std::mem::size_of_val(&e))).err(), Some(DecodeError::UnknownKind(99)));
        e.kind = event_kind::EVENT_EXEC.0; // a proc record needs more bytes than a sock record
        let buf = bytes_of(&e);
        assert_eq!(decode(as_bytes(&buf, std::mem::size_of_val(&e))).err(), Some(DecodeError::TooShort));
    }

    #[test]
    fn decodes_small_data_and_socket_info_records() {
        let d = netrec_data_event {
            kind: record_form::RECORD_DATA.0 | event_kind::EVENT_RECV.0,
            tid: 3,
            ts_ns: 4,
            sock_id: 5,
            bytes: 6,
        };
        let buf = bytes_of(&d);
        match decode(as_bytes(&buf, std::mem::size_of_val(&d))).unwrap() {
            Record::Data(Kind::Recv, got) => assert_eq!((got.sock_id, got.bytes), (5, 6)),
            _ => panic!("wrong record"),
        }
        assert_eq!(std::mem::size_of_val(&d), 32);
        let info = netrec_sock_event { kind: record_form::RECORD_SOCK_INFO.0, sock_id: 9, ..Default::default() };
        let buf = bytes_of(&info);
        assert!(
            matches!(decode(as_bytes(&buf, std::mem::size_of_val(&info))).unwrap(), Record::SockInfo(e) if e.sock_id == 9)
        );
        // A small form of a kind that has none is refused, not misread.
        let bad = netrec_data_event { kind: record_form::RECORD_DATA.0 | event_kind::EVENT_STATE.0, ..d };
        let buf = bytes_of(&bad);
        assert!(matches!(decode(as_bytes(&buf, 32)), Err(DecodeError::UnknownKind(_))));
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_raw(k.raw()), Some(k));
        }
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut comm = [0i8; 16];
        for (i, b) in b"curl".iter().enumerate() {
            comm[i] = *b as i8;
        }
        assert_eq!(c_str(&comm), "curl");
    }
}
