use rtc::cached;

trait Users {
    fn find(&self, id: u64) -> String;
}

struct Repo;

#[cached]
impl Users for Repo {
    #[cached(ttl = 60)]
    fn find(&self, id: u64) -> String {
        format!("user {id}")
    }
}

fn main() {
    Repo.find(1);
    Repo.invalidate_find(1);
    Repo.refresh_find(1);
}
