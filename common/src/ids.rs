//! Random identifiers from the thread-local CSPRNG (ChaCha, seeded by the OS).
use rand::Rng;

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `len` random lowercase base36 characters (≈5.17 bits each).
pub fn base36(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| BASE36[rng.random_range(0..BASE36.len())] as char).collect()
}

/// `bytes` random bytes as lowercase hex.
pub fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    ::hex::encode(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_the_requested_shape() {
        let id = super::base36(24);
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert_ne!(super::base36(24), id);
        assert_eq!(super::hex(16).len(), 32);
    }
}
