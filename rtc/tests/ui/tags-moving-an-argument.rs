use rtc::cached;

#[cached(tags = [name])]
fn greet(name: String) -> String {
    format!("hello {name}")
}

fn main() {
    greet("ann".to_string());
}
