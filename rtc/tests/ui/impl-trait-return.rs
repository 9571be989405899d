use rtc::cached;

#[cached]
fn greeting(id: u64) -> impl std::fmt::Display {
    format!("hello {id}")
}

fn main() {
    greeting(1);
}
