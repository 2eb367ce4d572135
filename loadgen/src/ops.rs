//! The operations under load, one module per target: the vault's RPCs,
//! its durable tokens, payments-svc's payments, the echo baseline, raw Redis,
//! raw PostgreSQL. Also the stock of pre-made single-use items that consuming
//! operations draw from.
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::report::Supply;

pub mod durable;
pub mod echo;
pub mod payments;
pub mod pg;
pub mod redis;
pub mod vault;

/// Items made before the timed phase, each handed out once.
#[derive(Debug)]
pub struct Stock<T> {
    items: Vec<T>,
    next: AtomicUsize,
}

impl<T> Stock<T> {
    pub fn new(items: Vec<T>) -> Self {
        Self { items, next: AtomicUsize::new(0) }
    }

    /// The next unused item, or `None` once all are taken.
    pub fn take(&self) -> Option<&T> {
        self.items.get(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The items never handed out.
    pub fn unused(&self) -> &[T] {
        let taken = self.next.load(Ordering::Relaxed).min(self.items.len());
        &self.items[taken..]
    }

    pub fn supply(&self) -> Supply {
        let made = self.items.len();
        Supply { made, used: made - self.unused().len() }
    }
}

/// Shortens an error for the report: the message, not the whole status dump.
pub(crate) fn status_message(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_item_is_taken_once() {
        let stock = Stock::new(vec![1, 2, 3]);
        assert_eq!(stock.take(), Some(&1));
        assert_eq!(stock.take(), Some(&2));
        assert_eq!(stock.unused(), &[3]);
        assert_eq!(stock.take(), Some(&3));
        assert_eq!(stock.take(), None);
        assert!(stock.unused().is_empty());
        assert_eq!(stock.supply().used, 3);
    }
}
