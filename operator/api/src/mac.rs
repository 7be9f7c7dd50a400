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

/// Encrypts or decrypts `data` in place under `key` and `nonce`: XOR with the keystream
/// HMAC-SHA256(key, "rce-stdin" || nonce || block number), block after block. With a fresh
/// random nonce per message, only the holder of the key can read it.
pub fn keystream_xor(key: &[u8], nonce: &[u8], data: &mut [u8]) {
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let mut input = Vec::with_capacity(9 + nonce.len() + 8);
        input.extend_from_slice(b"rce-stdin");
        input.extend_from_slice(nonce);
        input.extend_from_slice(&(i as u64).to_be_bytes());
        let block = hmac_sha256(key, &input);
        for (b, k) in chunk.iter_mut().zip(block) {
            *b ^= k;
        }
    }
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
    fn the_keystream_round_trips_and_depends_on_key_and_nonce() {
        let plain = b"line one\nline two, longer than one block of thirty-two bytes\n".to_vec();
        let mut c = plain.clone();
        keystream_xor(b"k1", b"n1", &mut c);
        assert_ne!(c, plain);
        let mut other_nonce = plain.clone();
        keystream_xor(b"k1", b"n2", &mut other_nonce);
        assert_ne!(other_nonce, c);
        let mut back = c.clone();
        keystream_xor(b"k1", b"n1", &mut back);
        assert_eq!(back, plain);
        let mut wrong = c;
        keystream_xor(b"k2", b"n1", &mut wrong);
        assert_ne!(wrong, plain);
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
