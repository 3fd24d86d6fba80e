//! The fuzz targets' bodies (`fuzz_message`, `fuzz_sdp` when it exists) as
//! property tests: arbitrary bytes, and real SIP messages with bytes
//! changed, cut or appended, never panic a matcher, and every answer built
//! from them parses again.

use proptest::prelude::*;

const SEEDS: &[&[u8]] = &[
    b"REGISTER sip:10.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.2:5061;branch=z9hG4bK-1;rport\r\nFrom: <sip:ua1@10.0.2.2>;tag=abc\r\nTo: <sip:ua1@10.0.2.2>\r\nCall-ID: 1-42@10.0.1.2\r\nCSeq: 1 REGISTER\r\nContact: <sip:ua1@10.0.1.2:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
    b"NOTIFY sip:srv@10.0.2.2 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.1.2:6000;branch=z9hG4bK-7\r\nf: <sip:ua@x>;tag=1\r\nt: <sip:srv@x>\r\ni: c7\r\nCSeq: 3 NOTIFY\r\no: keep-alive\r\nl: 0\r\n\r\n",
    b"OPTIONS sip:s SIP/2.0\r\nVia: v\r\nFrom: f\r\nTo: t\r\nCall-ID: c\r\nCSeq: 9 OPTIONS\r\nSubject: a\r\n folded\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.1.2:5061;branch=z9hG4bK-1;oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=17.5\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\no=x\r\n",
    b"\r\n\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        weft_sip::fuzz_message(&data);
    }

    #[test]
    fn mutated_messages(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut m = SEEDS[seed].to_vec();
        for (at, b) in edits {
            let i = at % m.len();
            m[i] = b;
        }
        m.truncate(cut % (m.len() + 1));
        m.extend_from_slice(&tail);
        weft_sip::fuzz_message(&m);
    }
}

#[test]
fn seeds_parse() {
    for s in &SEEDS[..4] {
        weft_sip::Message::parse(s).unwrap();
    }
}
