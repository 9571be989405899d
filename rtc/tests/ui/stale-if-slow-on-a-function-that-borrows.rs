use rtc::cached;

#[cached(stale_if_error = 600, stale_if_slow = 2)]
fn fetch(url: &str, retries: u32) -> Result<String, String> {
    Ok(format!("{url} {retries}"))
}

fn main() {}
