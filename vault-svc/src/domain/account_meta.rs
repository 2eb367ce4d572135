//! What may be shown about a bank account: the contract's [`MaskedAccount`]
//! (brand DIRECTDEBIT_SEPA, the IBAN's last four, country and bank code, the
//! holder and BIC) and the fingerprint only the vault adds. Never the IBAN.
//! Sealed as one flat JSON object under vault.proto's `AccountMetadata` names.
use serde::{Deserialize, Serialize};

use common::bank::{BankAccount, MaskedAccount};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountMeta {
    #[serde(flatten)]
    pub masked: MaskedAccount,
    pub fingerprint: String,
}

impl AccountMeta {
    pub fn of(account: &BankAccount, fingerprint: String) -> Self {
        Self { masked: account.masked(), fingerprint }
    }
}

#[cfg(test)]
mod tests {
    use common::bank::BankAccountInput;

    use super::*;

    #[test]
    fn the_sealed_form_never_holds_the_iban() {
        let input = BankAccountInput::new("FR14 2004 1010 0505 0001 3M02 606", "", "Jean Dupont", "");
        let account = BankAccount::validate(&input).unwrap();
        let json = serde_json::to_string(&AccountMeta::of(&account, "fp".into())).unwrap();
        assert_eq!(
            json,
            r#"{"brand":"DIRECTDEBIT_SEPA","last_digits":"2606","country":"FR","bank_code":"20041","holder":"Jean Dupont","bic":"","fingerprint":"fp"}"#
        );
        assert!(common::bank::find_ibans(&json).next().is_none());
    }
}
