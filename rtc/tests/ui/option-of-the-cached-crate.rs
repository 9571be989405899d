use rtc::cached;

#[cached(result = true, convert = r#"{ format!("{id}") }"#, time = 60)]
fn get_user(id: u64) -> Result<String, String> {
    Ok(format!("user {id}"))
}

fn main() {
    let _ = get_user(1);
}
