use rtc::cached;

struct Repo;

#[cached(lifetime = 60)]
impl Repo {
    #[cached]
    fn find(&self, id: u64) -> String {
        format!("user {id}")
    }
}

fn main() {
    Repo.find(1);
}
