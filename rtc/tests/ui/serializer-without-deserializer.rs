use rtc::cached;

fn encode(value: &String) -> Option<Vec<u8>> {
    Some(value.as_bytes().to_vec())
}

#[cached(serializer = encode)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
