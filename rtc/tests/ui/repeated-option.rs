use rtc::cached;

#[cached(tags = ["users"], lifetime = 60, tags = ["people"])]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
