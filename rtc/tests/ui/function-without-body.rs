use rtc::cached;

trait Users {
    #[cached]
    fn get_user(&self, id: u64) -> String;
}

fn main() {}
