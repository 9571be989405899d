use rtc::cached;

struct Repo;

#[cached]
impl Repo {
    #[cached(stale_while_revalidate)]
    fn find(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}
