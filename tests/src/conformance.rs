//! The store conformance suites' test matrix: every case of a suite run once
//! on a real PostgreSQL and once on SQLite, so both backends are held to one
//! semantics.

/// `conformance!(#[test attribute] make_store => case, …)` writes
/// `mod postgres` and `mod sqlite`, each with one test per `case` (named after
/// it) that runs `case(store)` on a fresh store from `make_store(Db)`.
/// `make_store` returns the store and the database it lives in, which is kept
/// until the case has finished.
#[macro_export]
macro_rules! conformance {
    (#[$test:meta] $store:path => $($case:ident),* $(,)?) => {
        $crate::conformance!(@backend postgres Postgres #[$test] $store => $($case),*);
        $crate::conformance!(@backend sqlite Sqlite #[$test] $store => $($case),*);
    };
    (@backend $module:ident $db:ident #[$test:meta] $store:path => $($case:ident),*) => {
        mod $module {
            $(
                #[$test]
                async fn $case() {
                    let (store, _database) = $store($crate::Db::$db).await;
                    super::$case(store).await
                }
            )*
        }
    };
}
