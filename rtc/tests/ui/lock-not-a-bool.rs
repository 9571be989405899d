use rtc::cached;

#[cached(lock = 1)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
