//! A 1 GiB download by `netkit http --download` streams in bounded memory.
//! (Its own test binary: the peak RSS read here covers only the children it waits for.)

use std::io::Read as _;
use std::process::Command;

use netkit_tests::{env, netkit_bin, work_dir};

#[test]
fn one_gib_download_streams_in_bounded_memory() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let source = root.join("one-gib.bin");
    // Sparse: nginx reads zeros without the disk holding a GiB.
    std::fs::File::create(&source)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let dest = work_dir().join("one-gib.bin");
    let out = Command::new(netkit_bin())
        .args([
            "http",
            "--download",
            &format!("{}/one-gib.bin", env("NETKIT_TEST_NGINX_URL")),
            "-o",
        ])
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak_kib = usage.max_rss();
    assert!(
        peak_kib < 32 * 1024,
        "netkit used {peak_kib} KiB for a 1 GiB download"
    );
    let mut file = std::fs::File::open(&dest).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            buf[..n].iter().all(|&b| b == 0),
            "the download differs from the source"
        );
        total += n as u64;
    }
    assert_eq!(total, 1 << 30);
    std::fs::remove_file(&dest).unwrap();
    std::fs::remove_file(&source).unwrap();
}
