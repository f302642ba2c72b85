//! libbpf's own messages: kept quietly, shown only when a load or attach fails.

use std::sync::Mutex;

use libbpf_rs::PrintLevel;

static LAST: Mutex<Vec<String>> = Mutex::new(Vec::new());
const KEEP: usize = 12;

fn keep(_level: PrintLevel, msg: String) {
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.len() == KEEP {
        last.remove(0);
    }
    last.push(msg.trim_end().to_string());
}

pub fn capture() {
    libbpf_rs::set_print(Some((PrintLevel::Warn, keep)));
}

/// The last messages libbpf printed, one per line, for an error's context.
pub fn recent() -> String {
    LAST.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
}
