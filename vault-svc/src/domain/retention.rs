//! The data retention rule, as the registration-token guide's example puts it
//! (a card expiring 1-Feb-Y1 is deleted 14 months after, on 1-Apr-Y2): a card
//! token is deleted on the first day of the fourteenth month after its
//! expiry month M/Y, read as the first of M (24 when extended, never more),
//! A bank-account token (the guide's non-card registration) is deleted 14
//! months after its last use, its creation counting as the first (24 when
//! extended): the same calendar day, or the month's last when it has none.
//! The sweeper deletes due tokens of both kinds in bounded batches and audits
//! each deletion; what it did is counted (`counters`).
use common::card::Expiry;
use common::clock::Millis;

use super::audit::{Actor, AuditEntry};
use super::error::VaultError;
use super::store::cards::{CardStore, Lookup, Scope, UseRetention};

pub mod counters;

pub const MONTHS: u32 = 14;
pub const EXTENDED_MONTHS: u32 = 24;

/// The first instant at which the token is due: 00:00 UTC on the first day of
/// the month `months` after the expiry month (02/Y1 → 1-Apr-Y2).
pub fn retain_until(expiry: Expiry, extended: bool) -> Millis {
    let months = if extended { EXTENDED_MONTHS } else { MONTHS };
    // Months since year 0, January = 0: the expiry month M/Y is its first day.
    let index = i64::from(expiry.year) * 12 + i64::from(expiry.month) - 1 + i64::from(months);
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    first_of_month(year as i32, month as u8)
}

/// When an account last used at `last_use` is due: `last_use` plus 14 (24
/// when extended) calendar months, the day clamped to the month's length.
pub fn account_retain_until(last_use: Millis, extended: bool) -> Millis {
    let months = if extended { EXTENDED_MONTHS } else { MONTHS };
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(last_use.div_euclid(1000)) else { return Millis::MAX };
    let index = i64::from(at.year()) * 12 + i64::from(at.month() as u8) - 1 + i64::from(months);
    let (year, month) = (index.div_euclid(12) as i32, (index.rem_euclid(12) + 1) as u8);
    let month = time::Month::try_from(month).unwrap_or(time::Month::January);
    let day = at.day().min(time::util::days_in_month(month, year));
    time::Date::from_calendar_date(year, month, day)
        .map(|d| d.with_time(at.time()).assume_utc().unix_timestamp() * 1000 + last_use.rem_euclid(1000))
        .unwrap_or(Millis::MAX)
}

/// What a use at `now` sets an account's retention to.
pub fn on_use(now: Millis) -> UseRetention {
    UseRetention { until: account_retain_until(now, false), extended_until: account_retain_until(now, true) }
}

fn first_of_month(year: i32, month: u8) -> Millis {
    let month = time::Month::try_from(month).unwrap_or(time::Month::January);
    time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .unwrap_or(Millis::MAX)
}

/// Deletes every token due at `now`, `batch` at a time, auditing each as
/// DL/DR by `actor`. Returns how many it deleted.
pub async fn sweep<C: CardStore>(store: &C, now: Millis, batch: u32, actor: &Actor) -> Result<usize, VaultError> {
    let swept = sweep_batches(store, now, batch, actor).await;
    counters::run(swept.is_ok());
    swept
}

async fn sweep_batches<C: CardStore>(store: &C, now: Millis, batch: u32, actor: &Actor) -> Result<usize, VaultError> {
    let mut deleted = 0;
    loop {
        let due = store.due(now, batch.max(1)).await?;
        if due.is_empty() {
            return Ok(deleted);
        }
        for token in due {
            let audit = AuditEntry::new(
                now,
                token.kind.deleted_event(),
                &token.merchant_id,
                &token.id,
                actor,
                "retention_expired",
            );
            let scope = Scope { merchant_id: &token.merchant_id, livemode: token.livemode };
            let found = store.delete(scope, &token.id, now, &audit).await? == Lookup::Found(());
            counters::token(found);
            deleted += usize::from(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(ms: Millis) -> String {
        let dt = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
        format!("{}-{:02}-{:02}T{:02}", dt.year(), dt.month() as u8, dt.day(), dt.hour())
    }

    #[test]
    fn fourteen_months_after_the_expiry_month_as_the_guide_counts() {
        // The guide's own example: a card expiring 1-Feb-Y1 is deleted on 1-Apr-Y2.
        assert_eq!(date(retain_until(Expiry { month: 2, year: 2025 }, false)), "2026-04-01T00");
        assert_eq!(date(retain_until(Expiry { month: 12, year: 2025 }, false)), "2027-02-01T00");
        assert_eq!(date(retain_until(Expiry { month: 1, year: 2026 }, false)), "2027-03-01T00");
        assert_eq!(date(retain_until(Expiry { month: 10, year: 2026 }, false)), "2027-12-01T00");
        assert_eq!(date(retain_until(Expiry { month: 11, year: 2026 }, false)), "2028-01-01T00");
        // Leap years change nothing: 1 February + 14 months.
        assert_eq!(date(retain_until(Expiry { month: 2, year: 2024 }, false)), "2025-04-01T00");
        assert_eq!(date(retain_until(Expiry { month: 2, year: 2028 }, true)), "2030-02-01T00");
    }

    #[test]
    fn an_account_is_kept_fourteen_months_after_its_last_use() {
        let at = |y, m, d| {
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d)
                .unwrap()
                .midnight()
                .assume_utc()
                .unix_timestamp()
                * 1000
        };
        assert_eq!(date(account_retain_until(at(2026, 12, 3), false)), "2028-02-03T00");
        assert_eq!(date(account_retain_until(at(2026, 12, 3), true)), "2028-12-03T00");
        // 31 December + 14 months: February has no 31st.
        assert_eq!(date(account_retain_until(at(2026, 12, 31), false)), "2028-02-29T00");
        assert_eq!(date(account_retain_until(at(2027, 12, 31), false)), "2029-02-28T00");
    }

    #[test]
    fn extension_is_twenty_four_months_and_no_more() {
        assert_eq!(date(retain_until(Expiry { month: 2, year: 2025 }, true)), "2027-02-01T00");
        assert_eq!(date(retain_until(Expiry { month: 12, year: 2025 }, true)), "2027-12-01T00");
        assert_eq!(
            retain_until(Expiry { month: 12, year: 2025 }, true),
            retain_until(Expiry { month: 12, year: 2025 }, true)
        );
    }
}
