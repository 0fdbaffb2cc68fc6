//! Numbers read the way memcached reads them.

fn c_isspace(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// C `strto*` scanning as memcached's `safe_strto*` use it: leading white space, a sign, at least
/// one digit, then the end, a NUL or white space. Returns (negative, magnitude or `None` when it
/// does not fit in 64 bits).
fn scan(s: &[u8]) -> Option<(bool, Option<u64>)> {
    let mut i = 0;
    while i < s.len() && c_isspace(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits = i;
    let mut value: Option<u64> = Some(0);
    while i < s.len() && s[i].is_ascii_digit() {
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')));
        i += 1;
    }
    if i == digits {
        return None;
    }
    match s.get(i) {
        None | Some(0) => {}
        Some(&b) if c_isspace(b) => {}
        Some(_) => return None,
    }
    Some((neg, value))
}

/// memcached's `safe_strtoull`: an unsigned 64-bit number; a minus sign is refused when the
/// result would look negative as a signed number.
pub fn strtou64(s: &[u8]) -> Option<u64> {
    let (neg, magnitude) = scan(s)?;
    let v = magnitude?;
    let v = if neg { v.wrapping_neg() } else { v };
    if (v as i64) < 0 && neg {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` into 32 bits (the value is truncated, as memcached does).
pub(super) fn strtoul32(s: &[u8]) -> Option<u32> {
    strtou64(s).map(|v| v as u32)
}

/// memcached's `safe_strtol` into 32 bits: a `long`, truncated.
pub(super) fn strtol32(s: &[u8]) -> Option<i32> {
    let (neg, magnitude) = scan(s)?;
    let m = magnitude?;
    let v: i64 = if neg {
        if m > 1 << 63 {
            return None;
        }
        (m as i64).wrapping_neg()
    } else {
        i64::try_from(m).ok()?
    };
    Some(v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_c() {
        assert_eq!(strtou64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtou64(b"18446744073709551616"), None);
        assert_eq!(strtou64(b"-1"), None);
        assert_eq!(strtou64(b"-0"), Some(0));
        assert_eq!(strtou64(b"+3"), Some(3));
        assert_eq!(strtou64(b" 5"), Some(5));
        assert_eq!(strtou64(b"5\tz"), Some(5));
        assert_eq!(strtou64(b"5z"), None);
        assert_eq!(strtou64(b""), None);
        assert_eq!(strtoul32(b"4294967297"), Some(1));
        assert_eq!(strtol32(b"4000000000"), Some(-294967296));
        assert_eq!(strtol32(b"-5"), Some(-5));
        assert_eq!(strtol32(b"9223372036854775808"), None);
    }
}
