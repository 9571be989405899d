use rtc::cached;

#[cached(hook_userdata = &name)]
fn greet(name: String) -> String {
    format!("hello {name}")
}

fn main() {
    greet("ann".to_string());
}
