use rtc::cached;

fn decode(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

#[cached(deserializer = decode)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
