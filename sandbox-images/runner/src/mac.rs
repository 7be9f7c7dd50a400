//! HMAC-SHA256 of the result document, and the key's hex form.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a result key: 32 random bytes, hex in the environment.
pub const KEY_BYTES: usize = 32;

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m =
        HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Constant-time check of `tag` against the HMAC of `data` under `key`.
pub fn verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let Ok(mut m) = HmacSha256::new_from_slice(key) else { return false };
    m.update(data);
    m.verify_slice(tag).is_ok()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower- or upper-case hex to bytes; `None` unless every character is a hex digit and the
/// length is even.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &tag));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &tag));
        assert!(!verify(b"Jefe", b"what do ya want for nothing?", &tag[..31]));
    }

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(unhex("00ffA5"), Some(vec![0, 255, 165]));
        assert_eq!(unhex(&hex(&[1, 2, 254])), Some(vec![1, 2, 254]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("+1"), None);
        assert_eq!(unhex(""), Some(vec![]));
    }
}
