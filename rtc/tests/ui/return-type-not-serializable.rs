use rtc::cached;

struct User {
    id: u64,
}

#[cached]
fn get_user(id: u64) -> Result<User, String> {
    Ok(User { id })
}

fn main() {
    let _ = get_user(1).map(|user| user.id);
}
