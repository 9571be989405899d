use rtc::cached;

#[cached(stale_if_error = 0, stale_while_revalidate = 0.0, stale_if_slow = 0)]
fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {
    get_user(1);
}
