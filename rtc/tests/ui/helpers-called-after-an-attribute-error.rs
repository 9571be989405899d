use rtc::cached;

#[cached(ttl = 60, skip(db))]
async fn get_user(db: &str, id: u64) -> String {
    format!("{db} {id}")
}

#[tokio::main]
async fn main() {
    get_user("db", 1).await;
    invalidate_get_user(1).await;
    invalidate_all_get_user().await;
    refresh_get_user("db", 1).await;
    let _key: Option<String> = key_get_user(1);
}
