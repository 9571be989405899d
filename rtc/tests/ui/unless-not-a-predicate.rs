use rtc::cached;

#[cached(unless = |page: &u64| *page == 0)]
fn page(path: String) -> String {
    path
}

fn main() {
    page(String::new());
}
