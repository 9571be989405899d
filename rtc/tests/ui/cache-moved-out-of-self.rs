use rtc::{cached, TaggedCache};

struct Repo {
    cache: TaggedCache,
}

#[cached]
impl Repo {
    #[cached(cache = self.cache)]
    fn find(&self, id: u64) -> String {
        format!("user {id}")
    }
}

fn main() {}
