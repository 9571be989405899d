use rtc::cached;

type Fallible<T> = Result<T, String>;

#[cached(cache_none)]
fn get_user(id: u64) -> Fallible<String> {
    Ok(format!("user {id}"))
}

fn main() {
    let _ = get_user(1);
}
