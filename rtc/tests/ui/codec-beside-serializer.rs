use rtc::cached;

fn encode(value: &String) -> Option<Vec<u8>> {
    Some(value.as_bytes().to_vec())
}

fn decode(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

#[cached(codec = rtc::Codec::Json, serializer = encode, deserializer = decode)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
