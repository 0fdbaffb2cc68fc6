//! Numbers the way the reference server's Perl computes and prints them.
//!
//! `INCREMENT`/`DECREMENT` numify the step (leading numeric prefix, else 0), use the old value
//! only if it "looks like a number" (else 0), add with Perl's integer-then-float rules and print
//! the result like Perl: integers in full, floats with `%.15g`.

/// A Perl scalar number: an integer (IV or UV range) or a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// An integer in `i64::MIN..=u64::MAX`.
    Int(i128),
    /// A double.
    Float(f64),
}

/// Perl's `a + b`.
impl std::ops::Add for Num {
    type Output = Num;
    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => int_or_float(a + b),
            _ => Num::Float(self.to_f64() + other.to_f64()),
        }
    }
}

/// Perl's `a - b`.
impl std::ops::Sub for Num {
    type Output = Num;
    fn sub(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => int_or_float(a - b),
            _ => Num::Float(self.to_f64() - other.to_f64()),
        }
    }
}

impl Num {
    /// The value as a double.
    pub fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Perl's stringification.
    pub fn to_perl_string(self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => format_float(f),
        }
    }
}

fn int_or_float(v: i128) -> Num {
    if v >= i128::from(i64::MIN) && v <= i128::from(u64::MAX) {
        Num::Int(v)
    } else {
        Num::Float(v as f64)
    }
}

/// Formats a double as Perl prints it (`%.15g`, `Inf`, `-Inf`, `NaN`).
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let sci = format!("{x:.14e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..15).contains(&exp) {
        let mantissa = strip_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let precision = usize::try_from(14 - exp).unwrap_or(0);
        strip_fraction_zeros(&format!("{x:.precision$}")).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// The numeric prefix of `s`: `(length consumed, is integer literal)`, or `None`.
fn numeric_prefix(s: &[u8]) -> Option<(usize, usize, bool)> {
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let rest = &s[i..];
    for word in [&b"infinity"[..], b"inf", b"nan"] {
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
            return Some((start, i + word.len(), false));
        }
    }
    let digits = |mut j: usize| {
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits(i);
    let mut end = int_end;
    let mut is_int = true;
    if end < s.len() && s[end] == b'.' {
        let frac_end = digits(end + 1);
        if int_end == i && frac_end == end + 1 {
            return None;
        }
        is_int = false;
        end = frac_end;
    } else if int_end == i {
        return None;
    }
    if end < s.len() && (s[end] == b'e' || s[end] == b'E') {
        let mut j = end + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            is_int = false;
            end = exp_end;
        }
    }
    Some((start, end, is_int))
}

fn to_num(text: &[u8], is_int: bool) -> Num {
    let text = std::str::from_utf8(text).unwrap_or("0");
    if is_int {
        if let Ok(v) = text.parse::<i128>() {
            if v >= i128::from(i64::MIN) && v <= i128::from(u64::MAX) {
                return Num::Int(v);
            }
        }
    }
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    let negative = lower.starts_with('-');
    let f = if unsigned.starts_with("inf") {
        f64::INFINITY
    } else if unsigned.starts_with("nan") {
        f64::NAN
    } else {
        unsigned.parse::<f64>().unwrap_or(0.0)
    };
    Num::Float(if negative { -f } else { f })
}

/// Perl's `looks_like_number`: the whole string (surrounding whitespace allowed) is a number.
pub fn looks_like_number(s: &[u8]) -> bool {
    match numeric_prefix(s) {
        Some((_, end, _)) => s[end..].iter().all(|b| b.is_ascii_whitespace()),
        None => false,
    }
}

/// Perl's `0 + $s`: the leading numeric prefix, or 0.
pub fn numify(s: &[u8]) -> Num {
    match numeric_prefix(s) {
        Some((start, end, is_int)) => to_num(&s[start..end], is_int),
        None => Num::Int(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_perl() {
        let cases = [
            (2.75, "2.75"),
            (999.0, "999"),
            (0.1 + 0.2, "0.3"),
            (1795294619.746312, "1795294619.74631"),
            (1.8446744073709552e19, "1.84467440737096e+19"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.5, "-1.5"),
            (f64::INFINITY, "Inf"),
        ];
        for (x, want) in cases {
            assert_eq!(format_float(x), want, "{x}");
        }
    }

    #[test]
    fn numify_and_looks_like_number() {
        assert_eq!(numify(b"3xyz"), Num::Int(3));
        assert_eq!(numify(b"abc"), Num::Int(0));
        assert_eq!(numify(b" 12"), Num::Int(12));
        assert_eq!(numify(b"1e3"), Num::Float(1000.0));
        assert_eq!(numify(b"1.5x"), Num::Float(1.5));
        assert_eq!(numify(b"-7"), Num::Int(-7));
        assert!(looks_like_number(b"1e3"));
        assert!(looks_like_number(b" 2.5 "));
        assert!(looks_like_number(b"-Inf"));
        assert!(looks_like_number(b".5"));
        assert!(looks_like_number(b"5."));
        assert!(!looks_like_number(b"12abc"));
        assert!(!looks_like_number(b""));
        assert!(!looks_like_number(b"."));
        assert!(!looks_like_number(b"0x10"));
    }

    #[test]
    fn arithmetic_like_perl() {
        let r = |a: &[u8], b: &[u8]| (numify(a) + numify(b)).to_perl_string();
        assert_eq!(r(b"1.5", b"1.25"), "2.75");
        assert_eq!((numify(b"1e3") - Num::Int(1)).to_perl_string(), "999");
        assert_eq!(r(b"9223372036854775807", b"1"), "9223372036854775808");
        assert_eq!(r(b"18446744073709551615", b"1"), "1.84467440737096e+19");
        assert_eq!(
            (numify(b"-9223372036854775808") - Num::Int(1)).to_perl_string(),
            "-9.22337203685478e+18"
        );
        assert_eq!(r(b"0", b"3"), "3");
    }
}
