//! Base62 (0-9, A-Z, a-z): URL-safe, double-click-selectable, no padding.

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Encodes `value` as exactly `width` base62 digits, most significant first, zero-padded.
/// Panics in debug if the value does not fit; callers pick widths that always fit.
pub fn encode_fixed(mut value: u64, width: usize, out: &mut String) {
    let mut buf = [b'0'; 11];
    debug_assert!(width <= buf.len());
    for slot in buf[..width].iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    debug_assert_eq!(value, 0, "value does not fit in {width} base62 digits");
    out.extend(buf[..width].iter().map(|&b| b as char));
}

/// The value of base62 digits, most significant first; `None` if one is not a base62 digit.
/// Fixed-width encoding is one-to-one, so comparing decoded values compares the strings
/// without building the expected one.
pub fn decode(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'Z' => d - b'A' + 10,
            b'a'..=b'z' => d - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(v as u64)
    })
}

/// Random base62 string of `len` characters, drawn uniformly (rejection sampling inside rand).
pub fn random(len: usize, out: &mut String) {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..len {
        out.push(ALPHABET[rng.random_range(0..62)] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_is_zero_padded() {
        let mut s = String::new();
        encode_fixed(0, 6, &mut s);
        assert_eq!(s, "000000");
        s.clear();
        encode_fixed(61, 2, &mut s);
        assert_eq!(s, "0z");
        s.clear();
        encode_fixed(u32::MAX as u64, 6, &mut s);
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn decode_inverts_encode() {
        for v in [0u64, 1, 61, 62, 3843, u32::MAX as u64, 62u64.pow(6) - 1] {
            let mut s = String::new();
            encode_fixed(v, 6, &mut s);
            assert_eq!(decode(s.as_bytes()), Some(v), "{s}");
        }
        assert_eq!(decode(b"0z_"), None);
        assert_eq!(
            decode(b"zzzzzzzzzzzz"),
            None,
            "overflow is refused, not wrapped"
        );
    }
}
