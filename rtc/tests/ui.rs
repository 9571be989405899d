//! What a user sees when `#[cached]` is used wrongly: one problem per file, the compiler's
//! output committed next to it (`TRYBUILD=overwrite cargo test -p rtc --test ui` updates it).

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
