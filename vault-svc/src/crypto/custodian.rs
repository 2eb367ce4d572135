//! Split knowledge and dual control of the KEK (PCI DSS 3.6.1.2, 3.7.6): the KEK set is split into
//! N custodian shares, rebuilt only by XOR of all N, and checked against a public commitment
//! before the vault uses it. Any N-1 shares are uniformly random and say nothing about the KEK.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::kek::{KekSet, Key, KeyError, KeyProvider};

/// The message MAC'd under each KEK version to make the public check value. Versioned so the
/// construction can change without an old check file ever matching a new one.
const CHECK_LABEL: &[u8] = b"payvault kek check v1";
const SHARE_HEADER: &str = "# payvault KEK share ";
const SHARE_LINE: &str = "expected `v<version>:<base64 of 32 bytes>`";
const CHECK_LINE: &str = "expected `v<version>:<base64url of 32 bytes>`";
/// Check values are written unpadded; a padded copy (some tools add `=`) reads the same.
const CHECK_DECODE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// 32 bytes per KEK version: a share, a check value, or the KEK being rebuilt.
type Versions = BTreeMap<u32, Zeroizing<[u8; 32]>>;
/// A bad line of a share or check file: its number and what was expected (never its content).
type LineError = (usize, &'static str);

/// What is wrong with a split or with the configured shares. Messages name files, line numbers
/// and versions, never key material.
#[derive(Debug, thiserror::Error)]
pub enum CustodianError {
    #[error("split knowledge needs at least 2 custodians, got {custodians}")]
    TooFewCustodians { custodians: usize },
    #[error("split knowledge needs at least 2 KEK share files, {given} configured")]
    TooFewShares { given: usize },
    #[error("KEK share file {} is configured twice", path.display())]
    DuplicateShareFile { path: PathBuf },
    #[error("KEK share file {} is missing", path.display())]
    ShareMissing { path: PathBuf },
    #[error("KEK check file {} is missing", path.display())]
    CheckMissing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{} line {line} is malformed ({reason})", path.display())]
    Malformed { path: PathBuf, line: usize, reason: &'static str },
    #[error("KEK check file {} lists no KEK version", path.display())]
    EmptyCheck { path: PathBuf },
    #[error("KEK share file {} has no share for KEK version {version}, which the check file lists", path.display())]
    ShareLacksVersion { path: PathBuf, version: u32 },
    #[error(
        "KEK share file {} has a share for KEK version {version}, which the check file does not list",
        path.display()
    )]
    UnexpectedVersion { path: PathBuf, version: u32 },
    #[error("KEK share file {} is share {index} of {of}, but {given} share files are configured", path.display())]
    ShareCountMismatch { path: PathBuf, index: usize, of: usize, given: usize },
    #[error("KEK share files {} and {} are both share {index}", first.display(), second.display())]
    DuplicateShare { first: PathBuf, second: PathBuf, index: usize },
    #[error("the shares do not rebuild the KEK for version {version} — a share is wrong or from another key")]
    Mismatch { version: u32 },
}

impl From<CustodianError> for KeyError {
    fn from(e: CustodianError) -> Self {
        KeyError::Custodian(e.to_string())
    }
}

/// Splits every version of `kek` into `custodians` XOR shares. Returns one share text per
/// custodian (`# payvault KEK share i of N`, then `v<version>:<base64>` lines, the KEK file
/// format) and the public check text (`v<version>:<base64url of HMAC-SHA256(KEK_v, label)>`).
pub fn split(kek: &KekSet, custodians: usize) -> Result<(Vec<Zeroizing<String>>, String), CustodianError> {
    if custodians < 2 {
        return Err(CustodianError::TooFewCustodians { custodians });
    }
    let keys: Vec<(u32, &Key)> = kek.versions().collect();
    // Reserved up front so the buffers never reallocate and leave unzeroized copies behind.
    let capacity = 64 + keys.len() * 64;
    let mut shares: Vec<Zeroizing<String>> = (1..=custodians)
        .map(|i| {
            let mut text = Zeroizing::new(String::with_capacity(capacity));
            text.push_str(&format!("{SHARE_HEADER}{i} of {custodians}\n"));
            text
        })
        .collect();
    let mut check =
        String::from("# payvault KEK check (public): base64url(HMAC-SHA256(KEK_v, \"payvault kek check v1\"))\n");
    for (version, key) in &keys {
        let mut last = Zeroizing::new(*key.expose());
        let (random, derived) = shares.split_at_mut(custodians - 1);
        for text in random {
            let share = Key::random();
            xor_into(&mut last, share.expose());
            push_line(text, *version, share.expose());
        }
        for text in derived {
            push_line(text, *version, &last);
        }
        let tag = check_mac(key.expose()).finalize().into_bytes();
        check.push_str(&format!("v{version}:{}\n", URL_SAFE_NO_PAD.encode(tag)));
    }
    Ok((shares, check))
}

/// Rebuilds the KEK set from custodian share files: every file must hold a share for exactly
/// the versions the public check file lists, and the XOR of the shares must match the check
/// value of every version. Nothing is returned unless all of it holds.
#[derive(Debug, Clone)]
pub struct CustodianKeyProvider {
    pub share_files: Vec<PathBuf>,
    pub check_file: PathBuf,
}

impl CustodianKeyProvider {
    /// `load` with the typed error.
    pub fn rebuild(&self) -> Result<KekSet, CustodianError> {
        let given = self.share_files.len();
        if given < 2 {
            return Err(CustodianError::TooFewShares { given });
        }
        let mut distinct = BTreeSet::new();
        if let Some(path) = self.share_files.iter().find(|p| !distinct.insert(*p)) {
            return Err(CustodianError::DuplicateShareFile { path: path.clone() });
        }

        let check_path = &self.check_file;
        let check_raw = read(check_path, |path| CustodianError::CheckMissing { path })?;
        let check = parse_lines(text_of(&check_raw, check_path)?, &CHECK_DECODE, CHECK_LINE)
            .map_err(|(line, reason)| CustodianError::Malformed { path: check_path.clone(), line, reason })?;
        if check.is_empty() {
            return Err(CustodianError::EmptyCheck { path: check_path.clone() });
        }

        let mut rebuilt: Versions = check.keys().map(|v| (*v, Zeroizing::new([0u8; 32]))).collect();
        let mut indices: BTreeMap<usize, &PathBuf> = BTreeMap::new();
        for path in &self.share_files {
            let raw = read(path, |path| CustodianError::ShareMissing { path })?;
            let text = text_of(&raw, path)?;
            let malformed = |(line, reason): LineError| CustodianError::Malformed { path: path.clone(), line, reason };
            if let Some((index, of)) = parse_header(text).map_err(malformed)? {
                if of != given {
                    return Err(CustodianError::ShareCountMismatch { path: path.clone(), index, of, given });
                }
                if let Some(first) = indices.insert(index, path) {
                    return Err(CustodianError::DuplicateShare { first: first.clone(), second: path.clone(), index });
                }
            }
            let share = parse_lines(text, &STANDARD, SHARE_LINE).map_err(malformed)?;
            if let Some(version) = share.keys().find(|v| !check.contains_key(v)) {
                return Err(CustodianError::UnexpectedVersion { path: path.clone(), version: *version });
            }
            for (version, sum) in rebuilt.iter_mut() {
                let part = share
                    .get(version)
                    .ok_or_else(|| CustodianError::ShareLacksVersion { path: path.clone(), version: *version })?;
                xor_into(sum, part);
            }
        }

        for (version, key) in &rebuilt {
            let expected = check.get(version).map(|c| c.as_slice()).unwrap_or_default();
            check_mac(key).verify_slice(expected).map_err(|_| CustodianError::Mismatch { version: *version })?;
        }
        KekSet::new(rebuilt.into_iter().map(|(v, k)| (v, Key::new(k))).collect())
            .map_err(|_| CustodianError::EmptyCheck { path: check_path.clone() })
    }
}

impl KeyProvider for CustodianKeyProvider {
    fn load(&self) -> Result<KekSet, KeyError> {
        Ok(self.rebuild()?)
    }
}

fn check_mac(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(CHECK_LABEL);
    mac
}

fn xor_into(acc: &mut [u8; 32], part: &[u8; 32]) {
    acc.iter_mut().zip(part).for_each(|(a, p)| *a ^= p);
}

/// Encodes into a zeroized buffer: `encode_string` would stage the base64 in a stack buffer.
fn push_line(text: &mut String, version: u32, bytes: &[u8; 32]) {
    let mut b64 = Zeroizing::new([0u8; 44]);
    // 44 = 4 * ceil(32 / 3): always enough, so the error case cannot happen.
    let len = STANDARD.encode_slice(bytes, b64.as_mut_slice()).unwrap_or_default();
    text.push('v');
    text.push_str(&version.to_string());
    text.push(':');
    b64[..len].iter().for_each(|b| text.push(char::from(*b)));
    text.push('\n');
}

fn read(path: &Path, missing: impl FnOnce(PathBuf) -> CustodianError) -> Result<Zeroizing<Vec<u8>>, CustodianError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing(path.to_path_buf())),
        Err(source) => Err(CustodianError::Unreadable { path: path.to_path_buf(), source }),
    }
}

fn text_of<'a>(raw: &'a [u8], path: &Path) -> Result<&'a str, CustodianError> {
    std::str::from_utf8(raw).map_err(|_| CustodianError::Unreadable {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// `(index, of)` from `# payvault KEK share i of N`, if the file carries that header. It only
/// sharpens the error for a missing or doubled share; the check value is what decides.
fn parse_header(text: &str) -> Result<Option<(usize, usize)>, LineError> {
    const REASON: &str = "expected `# payvault KEK share <i> of <n>`";
    let Some((i, rest)) = text.lines().enumerate().find_map(|(i, l)| Some((i, l.trim().strip_prefix(SHARE_HEADER)?)))
    else {
        return Ok(None);
    };
    let (index, of) = rest.split_once(" of ").ok_or((i + 1, REASON))?;
    let (index, of) = (number(index).ok_or((i + 1, REASON))?, number(of).ok_or((i + 1, REASON))?);
    if index == 0 || index > of { Err((i + 1, REASON)) } else { Ok(Some((index, of))) }
}

/// `v<version>:<base64 of 32 bytes>` lines; blank lines and `#` comments are skipped. Errors are
/// `(line number, reason)` and never echo the line.
fn parse_lines(text: &str, engine: &impl Engine, format: &'static str) -> Result<Versions, LineError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (version, b64) = line.strip_prefix('v').and_then(|l| l.split_once(':')).ok_or((i + 1, format))?;
        let version = number(version).ok_or((i + 1, format))?;
        let raw = Zeroizing::new(engine.decode(b64.trim()).map_err(|_| (i + 1, format))?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        if raw.len() != bytes.len() {
            return Err((i + 1, format));
        }
        bytes.copy_from_slice(&raw);
        if out.insert(version, bytes).is_some() {
            return Err((i + 1, "this KEK version is listed twice"));
        }
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder holding the share and check texts as files, plus the provider reading them.
    struct Ceremony {
        dir: PathBuf,
        keks: KekSet,
        shares: Vec<Zeroizing<String>>,
        check: String,
    }

    impl Ceremony {
        fn new(versions: &[u32], custodians: usize) -> Self {
            let keks = KekSet::new(versions.iter().map(|v| (*v, Key::random())).collect()).unwrap();
            let (shares, check) = split(&keks, custodians).unwrap();
            let dir = std::env::temp_dir().join(format!("payvault-custodian-{}", common::ids::hex(8)));
            std::fs::create_dir_all(&dir).unwrap();
            let ceremony = Self { dir, keks, shares, check };
            for (i, share) in ceremony.shares.iter().enumerate() {
                ceremony.write(&format!("share-{}", i + 1), share);
            }
            ceremony.write("check", &ceremony.check);
            ceremony
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }

        fn provider(&self, shares: &[&str]) -> CustodianKeyProvider {
            CustodianKeyProvider {
                share_files: shares.iter().map(|s| self.path(s)).collect(),
                check_file: self.path("check"),
            }
        }

        fn all(&self) -> CustodianKeyProvider {
            let names: Vec<String> = (1..=self.shares.len()).map(|i| format!("share-{i}")).collect();
            self.provider(&names.iter().map(String::as_str).collect::<Vec<_>>())
        }

        /// Every base64 payload a leak could show: each KEK version and each share line.
        fn secrets(&self) -> Vec<String> {
            let mut secrets: Vec<String> = self
                .shares
                .iter()
                .flat_map(|s| s.lines().filter_map(|l| Some(l.split_once(':')?.1.to_owned())).collect::<Vec<_>>())
                .collect();
            secrets.extend(self.keks.to_text().lines().filter_map(|l| Some(l.split_once(':')?.1.to_owned())));
            let raw: Vec<[u8; 32]> =
                secrets.iter().map(|b| STANDARD.decode(b).unwrap().try_into().unwrap()).collect::<Vec<_>>();
            secrets.extend(raw.iter().map(|r| URL_SAFE_NO_PAD.encode(r)));
            secrets
        }
    }

    impl Drop for Ceremony {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn decode_share(text: &str, version: u32) -> [u8; 32] {
        let b64 = text.lines().find_map(|l| l.strip_prefix(&format!("v{version}:"))).unwrap();
        STANDARD.decode(b64).unwrap().try_into().unwrap()
    }

    #[test]
    fn split_then_load_rebuilds_every_kek_version() {
        let c = Ceremony::new(&[1, 2], 3);
        let loaded = c.all().load().unwrap();
        assert_eq!(loaded.current().0, 2);
        for v in [1, 2] {
            assert_eq!(loaded.get(v).unwrap().expose(), c.keks.get(v).unwrap().expose());
        }
        assert_eq!(c.check.lines().filter(|l| !l.starts_with('#')).count(), 2);
        for (i, share) in c.shares.iter().enumerate() {
            assert_eq!(share.lines().next().unwrap(), format!("# payvault KEK share {} of 3", i + 1));
        }
        // A share is in the KEK file format.
        KekSet::parse(&c.shares[0]).unwrap();
    }

    #[test]
    fn no_share_is_the_key_and_shares_all_differ() {
        let c = Ceremony::new(&[1, 2], 3);
        for v in [1, 2] {
            let key = c.keks.get(v).unwrap().expose();
            let parts: Vec<[u8; 32]> = c.shares.iter().map(|s| decode_share(s, v)).collect();
            for (i, a) in parts.iter().enumerate() {
                assert_ne!(a, key, "share {} alone is the KEK", i + 1);
                assert!(parts[i + 1..].iter().all(|b| a != b), "two shares are equal");
            }
            // Only all three together give the key: no pair does.
            let xor = |a: &[u8; 32], b: &[u8; 32]| -> [u8; 32] { std::array::from_fn(|i| a[i] ^ b[i]) };
            assert_eq!(&xor(&xor(&parts[0], &parts[1]), &parts[2]), key);
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                assert_ne!(&xor(&parts[a], &parts[b]), key);
            }
        }
        assert!(matches!(split(&c.keks, 1), Err(CustodianError::TooFewCustodians { custodians: 1 })));
    }

    #[test]
    fn a_share_with_one_byte_flipped_fails_the_check() {
        let c = Ceremony::new(&[1, 2], 3);
        let mut bad = decode_share(&c.shares[1], 2);
        bad[7] ^= 0x01;
        let text = c.shares[1].replace(&STANDARD.encode(decode_share(&c.shares[1], 2)), &STANDARD.encode(bad));
        c.write("share-2", &text);
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::Mismatch { version: 2 }), "{err}");
        assert_eq!(
            err.to_string(),
            "the shares do not rebuild the KEK for version 2 — a share is wrong or from another key"
        );
    }

    #[test]
    fn a_share_from_another_split_fails_the_check() {
        let c = Ceremony::new(&[1, 2], 3);
        let (other, _) = split(&c.keks, 3).unwrap();
        c.write("share-3", &other[2]);
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::Mismatch { version: 1 }), "{err}");
        // Through the trait, the same message.
        let err = c.all().load().unwrap_err();
        assert!(err.to_string().contains("do not rebuild the KEK for version 1"), "{err}");
    }

    #[test]
    fn a_missing_share_file_is_named() {
        let c = Ceremony::new(&[1], 3);
        std::fs::remove_file(c.path("share-2")).unwrap();
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(&err, CustodianError::ShareMissing { path } if *path == c.path("share-2")), "{err}");
        assert!(err.to_string().contains(&c.path("share-2").display().to_string()));

        std::fs::remove_file(c.path("check")).unwrap();
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::CheckMissing { .. }), "{err}");
    }

    #[test]
    fn fewer_shares_than_the_split_made_are_refused() {
        let c = Ceremony::new(&[1, 2], 3);
        let err = c.provider(&["share-1", "share-3"]).rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::ShareCountMismatch { index: 1, of: 3, given: 2, .. }), "{err}");

        // Without the header, the check value still catches it.
        for name in ["share-1", "share-3"] {
            let text = std::fs::read_to_string(c.path(name)).unwrap();
            c.write(name, &text.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>());
        }
        let err = c.provider(&["share-1", "share-3"]).rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::Mismatch { version: 1 }), "{err}");

        let err = c.provider(&["share-1"]).rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::TooFewShares { given: 1 }), "{err}");
    }

    #[test]
    fn a_share_configured_twice_is_refused() {
        let c = Ceremony::new(&[1], 3);
        let err = c.provider(&["share-1", "share-2", "share-2"]).rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::DuplicateShareFile { .. }), "{err}");

        let copy = c.write("copy-of-2", &c.shares[1]);
        let err = c.provider(&["share-1", "share-2", "copy-of-2"]).rebuild().unwrap_err();
        assert!(matches!(&err, CustodianError::DuplicateShare { second, index: 2, .. } if *second == copy), "{err}");
    }

    #[test]
    fn versions_must_match_the_check_file() {
        let c = Ceremony::new(&[1, 2], 3);
        let without_v2: String =
            c.shares[0].lines().filter(|l| !l.starts_with("v2:")).map(|l| format!("{l}\n")).collect();
        c.write("share-1", &without_v2);
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(&err, CustodianError::ShareLacksVersion { path, version: 2 } if *path == c.path("share-1")));
        assert!(err.to_string().contains("share-1") && err.to_string().contains("version 2"), "{err}");

        c.write("share-1", &c.shares[0]);
        c.write(
            "check",
            &c.check.lines().filter(|l| !l.starts_with("v1:")).map(|l| format!("{l}\n")).collect::<String>(),
        );
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::UnexpectedVersion { version: 1, .. }), "{err}");

        c.write("check", "# nothing\n");
        assert!(matches!(c.all().rebuild(), Err(CustodianError::EmptyCheck { .. })));
    }

    #[test]
    fn malformed_lines_are_named_by_file_and_line() {
        let c = Ceremony::new(&[1, 2], 3);
        c.write("share-2", &format!("{}v3:not base64\n", *c.shares[1]));
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(&err, CustodianError::Malformed { path, line: 4, .. } if *path == c.path("share-2")), "{err}");
        assert!(err.to_string().contains("share-2 line 4"), "{err}");

        c.write("share-2", &c.shares[1].replace("v1:", "v1;"));
        assert!(matches!(c.all().rebuild(), Err(CustodianError::Malformed { line: 2, .. })));

        c.write("share-2", &format!("{}{}", *c.shares[1], c.shares[1].lines().nth(1).unwrap()));
        let err = c.all().rebuild().unwrap_err();
        assert!(matches!(err, CustodianError::Malformed { line: 4, reason: "this KEK version is listed twice", .. }));

        c.write("share-2", &c.shares[1]);
        c.write("check", &format!("{}v9:AAAA\n", c.check));
        assert!(matches!(c.all().rebuild(), Err(CustodianError::Malformed { line: 4, .. })));
    }

    #[test]
    fn errors_and_debug_never_show_key_material() {
        let c = Ceremony::new(&[1, 2], 3);
        let secrets = c.secrets();
        let mut shown = vec![format!("{:?}", c.all()), format!("{:?}", c.all().load().unwrap())];
        let mut record = |err: CustodianError| {
            shown.push(format!("{err} {err:?}"));
            let err = KeyError::from(err);
            shown.push(format!("{err} {err:?}"));
        };

        let (other, _) = split(&c.keks, 3).unwrap();
        c.write("share-3", &other[2]);
        record(c.all().rebuild().unwrap_err());
        c.write("share-3", &format!("{}v7:{}x\n", *c.shares[2], &secrets[0][..43]));
        record(c.all().rebuild().unwrap_err());
        c.write("share-3", &c.shares[2].replace("v2:", "v5:"));
        record(c.all().rebuild().unwrap_err());
        c.write("share-3", &c.shares[2].lines().take(2).map(|l| format!("{l}\n")).collect::<String>());
        record(c.all().rebuild().unwrap_err());
        record(c.provider(&["share-1", "share-2"]).rebuild().unwrap_err());
        std::fs::remove_file(c.path("share-3")).unwrap();
        record(c.all().rebuild().unwrap_err());

        assert!(shown.len() > 10);
        for text in &shown {
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "key material in {text}");
                assert!(!text.contains(&secret[..16]), "part of a key in {text}");
            }
        }
    }
}
