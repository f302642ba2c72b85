//! Compiles the BPF object and generates its skeleton into OUT_DIR.

use std::env;
use std::ffi::OsStr;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "../bpf/netrec.bpf.c";
const HEADER: &str = "../bpf/netrec.h";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo")).join("netrec.skel.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH is set by cargo");
    // libbpf's usdt.bpf.h includes <linux/errno.h>, whose <asm/errno.h> lives
    // in the multiarch include directory clang does not search for -target bpf.
    let (vmlinux_dir, multiarch_include) = match arch.as_str() {
        "x86_64" => ("../bpf/vmlinux/x86", "/usr/include/x86_64-linux-gnu"),
        other => panic!("no vendored vmlinux.h for {other}: add bpf/vmlinux/<arch>/vmlinux.h"),
    };
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            OsStr::new("-I"),
            OsStr::new("../bpf"),
            OsStr::new("-I"),
            OsStr::new(vmlinux_dir),
            OsStr::new("-idirafter"),
            OsStr::new(multiarch_include),
        ])
        .build_and_generate(&out)
        .expect("compiling bpf/netrec.bpf.c (needs clang; see README)");
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed={HEADER}");
}
