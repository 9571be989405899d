use std::borrow::Cow;

use rtc::cached;

// `&'static str` lives as long as the refresh may: accepted.
#[cached(stale_while_revalidate = 60)]
async fn search(index: &'static str, query: Cow<'_, str>) -> Option<String> {
    Some(format!("{index} {query}"))
}

fn main() {}
