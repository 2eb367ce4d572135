//! The test merchant that `vault-svc dev-init` writes: `PAYVAULT_MERCHANT_ID`,
//! `PAYVAULT_PKEY` and `PAYVAULT_SKEY` lines in an env file.
use std::path::Path;

use crate::Error;

#[derive(Clone)]
pub struct Merchant {
    pub merchant_id: String,
    pub public_key: String,
    /// `PAYVAULT_SKEY`: what payments-svc takes; only the payment ops need it.
    pub secret_key: Option<String>,
}

impl std::fmt::Debug for Merchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merchant").field("merchant_id", &self.merchant_id).finish_non_exhaustive()
    }
}

impl Merchant {
    /// The secret key, or an error naming the file that lacks it.
    pub fn require_secret_key(&self, path: &Path) -> Result<&str, Error> {
        self.secret_key
            .as_deref()
            .ok_or_else(|| Error::Setup(format!("{}: needs a PAYVAULT_SKEY line", path.display())))
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(Error::file(path))?;
        Self::parse(&text).ok_or_else(|| {
            Error::Setup(format!("{}: needs PAYVAULT_MERCHANT_ID and PAYVAULT_PKEY lines", path.display()))
        })
    }

    /// `KEY=value` lines; `export `, quotes, blank lines and `#` comments allowed.
    fn parse(text: &str) -> Option<Self> {
        let mut merchant_id = None;
        let mut public_key = None;
        let mut secret_key = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
            match k.trim() {
                "PAYVAULT_MERCHANT_ID" => merchant_id = Some(v),
                "PAYVAULT_PKEY" => public_key = Some(v),
                "PAYVAULT_SKEY" => secret_key = Some(v),
                _ => {}
            }
        }
        Some(Self { merchant_id: merchant_id?, public_key: public_key?, secret_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_are_read() {
        let m = Merchant::parse(
            "# dev merchant\nexport PAYVAULT_MERCHANT_ID=mrch_abc\n\nPAYVAULT_PKEY=\"pkey_test_x\"\nPAYVAULT_SKEY=skey_test_y\n",
        );
        let m = m.map(|m| (m.merchant_id, m.public_key, m.secret_key));
        assert_eq!(m, Some(("mrch_abc".into(), "pkey_test_x".into(), Some("skey_test_y".into()))));
        assert!(Merchant::parse("PAYVAULT_PKEY=pkey_test_x").is_none());
    }
}
