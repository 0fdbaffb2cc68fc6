//! Decoder tests: frames fed whole and byte by byte.

use super::*;

/// Every frame of `input`, fed in pieces of `step` bytes, with the keys of gets listed.
fn frames_in(input: &[u8], step: usize) -> Vec<String> {
    let mut d = McDecoder::new(4096, 1024);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            let (frame, used) = d.decode(&buf).unwrap();
            let text = match frame {
                Some(McFrame::Request(McRequest::Get { keys, cas, touch })) => {
                    let keys: Vec<String> = keys
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    Some(format!("Get {keys:?} cas={cas} touch={touch:?}"))
                }
                Some(f) => Some(format!("{f:?}")),
                None => None,
            };
            buf.drain(..used);
            match text {
                Some(t) => out.push(t),
                None if used == 0 => break,
                None => {}
            }
        }
    }
    out
}

fn frames(input: &[u8]) -> Vec<String> {
    let whole = frames_in(input, input.len().max(1));
    assert_eq!(frames_in(input, 1), whole, "split invariance");
    whole
}

fn err(text: &'static str) -> String {
    format!(
        "{:?}",
        McFrame::Reply {
            text,
            noreply: false
        }
    )
}

#[test]
fn storage_and_data_blocks() {
    let f = frames(b"set k 1 2 3\r\nabc\r\nset k 0 0 3\r\nabcde\r\n");
    let stored = McFrame::Request(McRequest::Store {
        mode: StoreMode::Set,
        key: b"k",
        flags: 1,
        exptime: 2,
        data: b"abc",
        noreply: false,
    });
    assert_eq!(f, vec![format!("{stored:?}"), err(BAD_CHUNK), err(ERROR)]);
    let f = frames(b"set k 0 0 2000\r\nget a\r\n");
    assert_eq!(f.len(), 1, "the data block is skipped: {f:?}");
    assert!(f[0].contains("TooLarge"), "{f:?}");
    let mut big = b"set k 0 0 2000\r\n".to_vec();
    big.extend([b'x'; 2000]);
    big.extend_from_slice(b"\r\nget a\r\n");
    let f = frames(&big);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[1], "Get [\"a\"] cas=false touch=None");
    assert_eq!(
        frames(b"cas k 0 0 1\r\nz\r\n"),
        vec![err(ERROR), err(ERROR)]
    );
    assert_eq!(
        frames(b"set k 0 0 abc noreply\r\n"),
        vec![format!(
            "{:?}",
            McFrame::Reply {
                text: BAD_FORMAT,
                noreply: true
            }
        )]
    );
}

#[test]
fn lines_and_keys() {
    assert_eq!(frames(b"\r\n"), vec![err(ERROR)]);
    assert_eq!(frames(b"GET k\r\n"), vec![err(ERROR)]);
    assert_eq!(frames(b"get\r\n"), vec![err(ERROR)]);
    assert_eq!(frames(b"xx HTTP/1.1\r\n"), vec!["Close".to_string()]);
    let long = format!("get a {}\r\n", "x".repeat(251));
    assert_eq!(frames(long.as_bytes()), vec![err(BAD_FORMAT)]);
    assert_eq!(frames(b"get a=b\r\n"), vec![err(BAD_FORMAT)]);
    assert_eq!(
        frames(b"  gets  a\0b \n gat 5  x  y \r\n"),
        vec![
            "Get [\"a\"] cas=true touch=None".to_string(),
            "Get [\"x\", \"y\"] cas=false touch=Some(5)".to_string()
        ]
    );
    assert_eq!(frames(b"delete k 5\r\n"), vec![err(BAD_DELETE)]);
    let mut d = McDecoder::new(8, 8);
    assert!(d.decode(b"get aaaaaaaaaa").is_err());
}
