use rtc::cached;

fn encode(value: &String) -> Vec<u8> {
    value.as_bytes().to_vec()
}

fn decode(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

#[cached(serializer = encode, deserializer = decode)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    get_user(1);
}
