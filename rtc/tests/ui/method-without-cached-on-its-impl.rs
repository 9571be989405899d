use rtc::cached;

trait Users {
    fn find(&self, id: u64) -> String;
}

struct Repo;

impl Users for Repo {
    #[cached]
    fn find(&self, id: u64) -> String {
        format!("user {id}")
    }
}

fn main() {
    Repo.find(1);
}
