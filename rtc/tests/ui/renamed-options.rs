use rtc::cached;

fn encode(value: &String) -> Option<Vec<u8>> {
    Some(value.as_bytes().to_vec())
}

fn decode(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

#[cached(serializer = encode, unserializer = decode, stale_if_error = 60, timeout = 2)]
fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {
    get_user(1);
}
