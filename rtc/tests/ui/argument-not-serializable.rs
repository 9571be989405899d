use rtc::cached;

struct Db;

#[cached]
fn get_user(db: &Db, id: u64) -> String {
    let _ = db;
    format!("user {id}")
}

fn main() {
    get_user(&Db, 1);
}
