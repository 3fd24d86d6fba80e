//! A process out of descriptors still knows its links: the link state of a
//! port is read through files opened with the port, and a failed read is an
//! error, never "down" (which would stop forwarding). Its own test binary:
//! it exhausts this process's descriptors.

use std::fs::File;
use weft_io::afpacket::{link_is_up, LinkWatch};

#[test]
fn link_state_survives_descriptor_exhaustion() {
    // `lo` exists in every namespace; it reports operstate "unknown" and
    // carrier 1, which is up.
    let watch = LinkWatch::open("lo").expect("sysfs has lo");
    assert!(watch.read().unwrap(), "lo is up");
    assert!(link_is_up("lo"));

    // Few descriptors for this process, then all of them taken.
    let lim = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: passes a pointer to a live rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut held = Vec::new();
    let exhausted = loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => break e,
        }
        assert!(held.len() < 100, "the limit did not take");
    };
    assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE));

    // Opening the sysfs files now fails: reading that way would say "down".
    assert!(
        !link_is_up("lo"),
        "opening sysfs without descriptors cannot read the link"
    );
    // The watch reads through its open files and still says up.
    assert!(watch.read().unwrap(), "the held files still read");
    drop(held);
}
