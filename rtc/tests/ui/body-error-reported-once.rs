use rtc::cached;

#[cached(lifetime = 60)]
fn get_user(id: u64) -> String {
    let name: u32 = "not a number";
    format!("user {id} {name}")
}

fn main() {
    get_user(1);
}
