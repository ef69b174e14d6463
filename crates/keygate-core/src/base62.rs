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
}
