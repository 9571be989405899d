use rtc::cached;

static CACHE: &str = "redis://localhost";

#[cached(cache = &CACHE)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
