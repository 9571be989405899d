use rtc::cached;

#[cached]
const fn answer() -> u64 {
    42
}

fn main() {
    answer();
}
