use rtc::cached;

#[cached(lifetime = 0)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
