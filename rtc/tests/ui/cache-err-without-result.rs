use rtc::cached;

#[cached(cache_err = true)]
fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {
    get_user(1);
}
