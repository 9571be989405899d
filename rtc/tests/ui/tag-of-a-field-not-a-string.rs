use rtc::cached;

pub struct User {
    pub id: u64,
}

#[cached(tags = ["users", user.id], skip(user))]
fn profile(user: &User) -> String {
    format!("user {}", user.id)
}

fn main() {
    profile(&User { id: 1 });
}
