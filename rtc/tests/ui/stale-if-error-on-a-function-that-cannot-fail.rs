use rtc::cached;

type Name = String;

#[cached(stale_if_error = 60)]
fn get_user(id: u64) -> Name {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
