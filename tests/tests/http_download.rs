//! A 1 GiB download by `netkit http --download` streams in bounded memory.
//! (Its own test binary: the peak RSS read here covers only the children it waits for.)

use std::io::Read as _;
use std::process::Command;

use netkit_tests::{env, netkit_bin, work_dir};

#[test]
fn one_gib_download_streams_in_bounded_memory() {
    let root = std::path::PathBuf::from(env("NETKIT_TEST_NGINX_ROOT"));
    let source = root.join("one-gib.bin");
    // Sparse: nginx reads zeros without the disk holding a GiB. Zeros alone would not show a
    // hole the download left or a chunk written at the wrong place, so three 64 KiB blocks
    // (the start, across the middle, the end) hold their own offsets, one per 8 bytes.
    let planted = std::fs::File::create(&source).unwrap();
    planted.set_len(1 << 30).unwrap();
    for at in [0u64, (1 << 29) - (1 << 15), (1 << 30) - (1 << 16)] {
        let block: Vec<u8> = (0..1u64 << 13)
            .flat_map(|i| (at + 8 * i).to_le_bytes())
            .collect();
        std::os::unix::fs::FileExt::write_all_at(&planted, &block, at).unwrap();
    }
    drop(planted);
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
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), 1 << 30);
    // Compared whole with the source (read from the page cache and holes: quick).
    let (mut got, mut want) = (
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&dest).unwrap()),
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&source).unwrap()),
    );
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for mib in 0..1024 {
        got.read_exact(&mut a).unwrap();
        want.read_exact(&mut b).unwrap();
        assert!(a == b, "the download differs from the source in MiB {mib}");
    }
    std::fs::remove_file(&dest).unwrap();
    std::fs::remove_file(&source).unwrap();
}
