//! Round trips, files as the reference server writes them, damaged files and legacy upgrades.

use base64::Engine as _;
use bytes::Bytes;

use super::*;
use crate::{Cache, Entry};

/// A file as the reference server writes it (YAML::Syck layout and quoting).
const PERL_FILE: &[u8] = b"\0CLACKSV3--- \na: \n  accesstime: 0\n  cachetime: '1795294610.59245'\n  data: ''\n  deleted: 1\n\"n\": \n  accesstime: '1795294649.403'\n  cachetime: '1795294619.74781'\n  data: '2.75'\n  deleted: 0\nplain: \n  accesstime: 1795294649.5\n  cachetime: 1795294649.5\n  data: 3\n  deleted: 0\n\0CLACKSV3";

#[test]
fn reads_a_perl_written_file() {
    let (cache, format) = decode(PERL_FILE, 5.0).unwrap();
    assert_eq!(format, Format::V3);
    let a = cache.get(b"a").unwrap();
    assert!(a.deleted);
    assert_eq!(a.cachetime, 1795294610.59245);
    let n = cache.get(b"n").unwrap();
    assert_eq!(n.data, Bytes::from_static(b"2.75"));
    assert!(!n.deleted);
    assert_eq!(n.accesstime, 1795294649.403);
    assert_eq!(cache.get(b"plain").unwrap().data, Bytes::from_static(b"3"));
}

#[test]
fn round_trip() {
    let mut cache = Cache::default();
    cache
        .store(
            Bytes::from_static(b"k \"q\" \\ :x"),
            Bytes::from_static(b"v: # 'x' \x01 \xc3\xa4"),
            1795294610.59245,
        )
        .unwrap();
    cache
        .remove(Bytes::from_static(b"gone"), 1795294611.5)
        .unwrap();
    cache
        .store(
            Bytes::from_static(b"yes"),
            Bytes::from_static(b""),
            1795294612.0,
        )
        .unwrap();
    let limits = crate::memcache::Limits {
        item: 100,
        stored: 200,
    };
    cache
        .mc_store(
            clacks_proto::memcache::StoreMode::Set,
            b"mc",
            crate::memcache::NewValue {
                data: b"two\nlines",
                flags: 42,
                expires: 1795299999.5,
            },
            limits,
            1795294613.0,
        )
        .unwrap();
    let file = encode(&cache);
    let (back, _) = decode(&file, 0.0).unwrap();
    let records = |c: &Cache| {
        let mut v: Vec<_> = c
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    Entry {
                        cas: 0,
                        ..e.clone()
                    },
                )
            })
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    let (a, b) = (records(&cache), records(&back));
    assert_eq!(a, b);
    let empty = encode(&Cache::default());
    assert_eq!(decode(&empty, 0.0).unwrap().0.len(), 0);
}

#[test]
fn rejects_damaged_files() {
    assert_eq!(
        decode(b"\0CLACKSV3--- \nk: \n  data: x\n", 0.0).unwrap_err(),
        PersistError::MissingEndMarker { len: 28 }
    );
    assert!(matches!(
        decode(b"\0CLACKSV3", 0.0),
        Err(PersistError::TooSmall { .. })
    ));
    assert!(matches!(
        decode(b"garbage", 0.0),
        Err(PersistError::UnknownFormat { .. })
    ));
    assert!(matches!(
        decode(b"\0CLACKSV3- [\0CLACKSV3", 0.0),
        Err(PersistError::InvalidYaml { .. })
    ));
}

/// Every byte the protocol can carry: all but LF (CR is dropped by the framing, but a
/// memcached value or a KEYSYNC'd value may still hold it, so it is kept here too).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn every_byte() -> Vec<u8> {
    (0..=255u8).filter(|&b| b != b'\n').collect()
}

#[test]
fn long_keys_and_every_byte_survive_a_round_trip() {
    let mut cache = Cache::default();
    let mut keys: Vec<Vec<u8>> = vec![
        vec![b'k'; 1023],
        vec![b'k'; 1024],
        vec![b'x'; 5000],
        // 300 bytes that are not UTF-8: 1,202 bytes once quoted.
        vec![0xff; 300],
        every_byte(),
        [b"key ".as_slice(), &every_byte(), &[b'k'; 2000]].concat(),
        "grüße".as_bytes().to_vec(),
        b"?x: - [a]\" #".to_vec(),
    ];
    keys.sort();
    for (i, k) in keys.iter().enumerate() {
        let value = [every_byte(), vec![b'v'; i * 700]].concat();
        cache
            .store(Bytes::from(k.clone()), Bytes::from(value), 1795294610.5)
            .unwrap();
    }
    cache
        .store(
            Bytes::from_static(b"short"),
            Bytes::from_static(b"\xc3\xa4 valid \xe2\x80\xa8 utf-8"),
            1795294610.5,
        )
        .unwrap();
    let file = encode(&cache);
    let (back, _) = decode(&file, 0.0).unwrap();
    assert_eq!(back.len(), cache.len());
    for (k, e) in cache.iter() {
        assert_eq!(back.get(k).map(|b| &b.data), Some(&e.data), "{k:?}");
    }
    // Valid UTF-8 is written as it is, like YAML::Syck does; other high bytes escaped.
    assert!(contains(&file, b"\"\xc3\xa4 valid \xe2\x80\xa8"));
    assert!(contains(&file, b"\"\\xff\\xff"));
    // Long keys are explicit keys.
    assert!(contains(&file, b"? \"kk"));
    // The streaming writer makes the same bytes.
    let mut records: Vec<_> = cache.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
    let mut streamed = Vec::new();
    write_records(&mut records, &mut streamed).unwrap();
    assert_eq!(streamed, file);
    // Of a record seen twice, the later copy is written.
    let (key, entry) = records[0].clone();
    let mut older = entry.clone();
    older.data = Bytes::from_static(b"older");
    records.insert(0, (key, older));
    let mut again = Vec::new();
    write_records(&mut records, &mut again).unwrap();
    assert_eq!(again, file);
}

#[test]
fn reads_yaml_syck_escapes_and_raw_bytes() {
    // As YAML::Syck writes a value that is not valid UTF-8, and raw bytes in a key.
    let file = b"\0CLACKSV3--- \n\"k\xff\xe4\": \n  accesstime: 1\n  cachetime: 1\n  data: \"\\0\\x01\\a\\b\\t\\v\\f\\r\\e\\x1F\\\"\\\\\\x7F\\x80\\xFF\"\n  deleted: 0\n\0CLACKSV3";
    let (cache, _) = decode(file, 0.0).unwrap();
    let e = cache.get(b"k\xff\xe4").unwrap();
    assert_eq!(
        &e.data[..],
        b"\0\x01\x07\x08\t\x0b\x0c\r\x1b\x1f\"\\\x7f\x80\xff"
    );
}

#[test]
fn reads_long_implicit_keys_as_yaml_syck_writes_them() {
    let long = "word ".repeat(300);
    let quoted = "q\\\"\\x01".repeat(400);
    let file = format!(
        "\0CLACKSV3--- \n\"{quoted}\": \n  accesstime: 1\n  cachetime: 1\n  data: v1\n  deleted: 0\n{long}: \n  accesstime: 1\n  cachetime: 1\n  data: v2\n  deleted: 0\nshort: \n  data: v3\n\0CLACKSV3"
    );
    let (cache, _) = decode(file.as_bytes(), 0.0).unwrap();
    assert_eq!(cache.len(), 3);
    let k = "q\"\x01".repeat(400);
    assert_eq!(&cache.get(k.as_bytes()).unwrap().data[..], b"v1");
    // A plain scalar's trailing space is not part of it.
    assert_eq!(
        &cache.get(long.trim_end().as_bytes()).unwrap().data[..],
        b"v2"
    );
    assert_eq!(&cache.get(b"short").unwrap().data[..], b"v3");
}

#[test]
fn errors_say_where() {
    // A record cut off inside a quoted value.
    let good = encode(&{
        let mut c = Cache::default();
        c.store(Bytes::from_static(b"a"), Bytes::from_static(b"1"), 5.0)
            .unwrap();
        c.store(Bytes::from_static(b"b"), Bytes::from_static(b"2"), 5.0)
            .unwrap();
        c
    });
    let cut = good.len() - MARKER.len() - 20;
    let damaged = [&good[..cut], MARKER].concat();
    let err = decode(&damaged, 0.0).unwrap_err();
    let offset = err.offset().unwrap();
    assert!(offset > MARKER.len() && offset <= damaged.len(), "{err}");
    assert!(err.to_string().contains("line "), "{err}");
    let truncated = &good[..good.len() - 3];
    let err = decode(truncated, 0.0).unwrap_err();
    assert_eq!(err.offset(), Some(truncated.len()));
    assert!(err
        .to_string()
        .contains(&format!("byte {}", truncated.len())));
    // A record that is not a mapping is found at its line.
    let err = decode(b"\0CLACKSV3--- \na: \n  data: x\nb: 3\n\0CLACKSV3", 0.0).unwrap_err();
    assert!(
        matches!(err, PersistError::InvalidYaml { at, .. } if at.line == 4),
        "{err}"
    );
}

#[test]
fn upgrades_legacy_files_with_tombstones() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let file = format!(
        "{}\n{}\n{}\nENDBYTES\n",
        b64("--- \nk: v\n"),
        b64("--- \nk: '100.5'\ngone: '90'\n"),
        b64("--- \nk: '101'\n")
    );
    let (cache, format) = decode(file.as_bytes(), 7.0).unwrap();
    assert_eq!(format, Format::Legacy);
    let k = cache.get(b"k").unwrap();
    assert_eq!(
        (k.cachetime, k.accesstime, k.deleted),
        (100.5, 101.0, false)
    );
    let gone = cache.get(b"gone").unwrap();
    assert!(gone.deleted);
    assert_eq!(gone.cachetime, 90.0);
}
