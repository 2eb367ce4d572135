//! Enums stored and sent as fixed texts (a payment's status, a ledger kind, a
//! recovery point): they derive strum's `IntoStaticStr` and `EnumString`
//! with their texts, and `Text` gives every such enum `as_str` and its
//! inverse `parse`, so no enum spells its texts out twice.
use std::str::FromStr;

pub trait Text: Copy + Into<&'static str> + FromStr {
    /// The text the enum is stored and sent as.
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// The value a text names; `None` for a text this code does not know.
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl<T: Copy + Into<&'static str> + FromStr> Text for T {}
