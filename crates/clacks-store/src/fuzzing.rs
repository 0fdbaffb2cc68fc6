//! Invariant checks shared by the fuzz target `persist_load` (in `fuzz/`) and the test that
//! replays its seed corpus on stable. Not part of the API: each function panics when an
//! invariant does not hold.

use bytes::Bytes;

use crate::number::format_float;
use crate::persist::{self, Format};
use crate::Cache;

/// The clock reading that fills in missing timestamps.
pub const NOW: f64 = 1_700_000_000.5;

/// Loads `data` as a persistence file.
///
/// Invariants: no panic; when it loads, what [`persist::encode`] writes for the result loads
/// again, as version 3, to the same records (times as the file writes them, with 15 significant
/// digits like Perl), and writing that gives the same bytes again.
pub fn persist_load(data: &[u8]) {
    let Ok((cache, _)) = persist::decode(data, NOW) else {
        return;
    };
    let file = persist::encode(&cache);
    let (again, format) = match persist::decode(&file, NOW) {
        Ok(loaded) => loaded,
        Err(e) => panic!(
            "a file we wrote does not load: {e}\n{:?}",
            Bytes::from(file)
        ),
    };
    assert_eq!(format, Format::V3);
    assert_eq!(records(&again), records(&cache));
    assert_eq!(persist::encode(&again), file, "writing is not stable");
}

/// One record as the file says it.
type Record = (Bytes, Bytes, String, String, bool, u32, String);

fn records(cache: &Cache) -> Vec<Record> {
    let mut out: Vec<Record> = cache
        .iter()
        .map(|(key, e)| {
            (
                key.clone(),
                e.data.clone(),
                format_float(e.cachetime),
                format_float(e.accesstime),
                e.deleted,
                e.flags,
                format_float(e.expires),
            )
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_and_odd_files() {
        for input in [
            &b""[..],
            b"\0CLACKSV3",
            b"\0CLACKSV3--- {}\n\0CLACKSV3",
            b"\0CLACKSV3--- \nk: \n  data: x\n",
            b"\0CLACKSV3--- \nk: \n  cachetime: 1.23456789012345678\n  data: \"a\\x01b\"\n  deleted: 0\n\0CLACKSV3",
            b"\0CLACKSV3--- \nk: \n  expires: NaN\n  flags: 7\n  deleted: 1\n\0CLACKSV3",
            b"garbage\nmore\nENDBYTES\n",
        ] {
            persist_load(input);
        }
    }
}
