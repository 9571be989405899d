use rtc::cached;

#[cached(tag = ["users"], lifetime = 60, lifetime = 30, skip(nme))]
fn get_user(id: u64, name: String) -> String {
    format!("user {id} {name}")
}

fn main() {
    get_user(1, String::new());
}
