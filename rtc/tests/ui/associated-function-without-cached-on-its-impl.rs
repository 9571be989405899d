use rtc::cached;

struct Repo;

impl Repo {
    #[cached]
    fn count(table: String) -> u64 {
        table.len() as u64
    }
}

fn main() {
    Repo::count("users".to_owned());
}
