use rtc::cached;

#[cached]
fn distance((x, y): (i64, i64)) -> i64 {
    x.abs() + y.abs()
}

fn main() {
    distance((1, 2));
}
