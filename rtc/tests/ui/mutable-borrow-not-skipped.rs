use rtc::cached;

#[cached]
fn next_id(counter: &mut u64, prefix: String) -> String {
    *counter += 1;
    format!("{prefix}{counter}")
}

fn main() {
    let mut counter = 0;
    next_id(&mut counter, String::new());
}
