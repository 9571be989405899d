use rtc::cached;

struct Repo;

impl Repo {
    #[cached(skip(self))]
    fn get_user(&self, id: u64) -> String {
        format!("user {id}")
    }
}

fn main() {
    Repo.get_user(1);
}
