//! What the handlers call: cached reads, and writes that invalidate the tags they touch.
//!
//! Every read is tagged with what it depends on; every write, once committed, invalidates
//! those tags. rtc guarantees that a read that starts after the invalidation returned sees the
//! write, even if an older read was still computing its value at the time.

use rtc::cached;

use super::database::{Book, Database, NewBook};

/// Why a request failed.
#[derive(Debug)]
pub enum CatalogError {
    /// No such book.
    NotFound,
    /// The database failed.
    Database(rusqlite::Error),
}

impl From<rusqlite::Error> for CatalogError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Database(error)
    }
}

fn book_tag(id: i64) -> String {
    format!("book:{id}")
}

/// The tag of everything that lists an author's books.
pub(crate) fn author_tag(author: &str) -> String {
    format!("author:{author}")
}

/// One book. `Err` is not cached, so a book added later is found at once.
#[cached(tags = [book_tag(id)], lifetime = 600, lock = true, skip(db))]
pub async fn book(db: &Database, id: i64) -> Result<Book, CatalogError> {
    db.book(id).await?.ok_or(CatalogError::NotFound)
}

/// An author's books. Tagged with the author only: any write to one of them invalidates it.
#[cached(tags = [author_tag(&author)], lifetime = 600, lock = true, skip(db))]
pub async fn books_by(db: &Database, author: String) -> Result<Vec<Book>, CatalogError> {
    Ok(db.books_by(author).await?)
}

/// Changes a book, then invalidates the book and the lists of its old and new author.
pub async fn update(db: &Database, id: i64, book: NewBook) -> Result<Book, CatalogError> {
    let (old_author, book) = db.update(id, book).await?.ok_or(CatalogError::NotFound)?;
    invalidate([
        book_tag(id),
        author_tag(&old_author),
        author_tag(&book.author),
    ])
    .await;
    Ok(book)
}

/// Adds a book, then invalidates its author's list.
pub async fn insert(db: &Database, book: NewBook) -> Result<Book, CatalogError> {
    let book = db.insert(book).await?;
    invalidate([book_tag(book.id), author_tag(&book.author)]).await;
    Ok(book)
}

/// Invalidates `tags` in the global cache. When Redis cannot take it, readers may be served the
/// old value until the entries' lifetime ends: say so loudly.
async fn invalidate<const N: usize>(tags: [String; N]) {
    let cache = rtc::global().expect("the service sets the global cache at start");
    if !cache.invalidate_async(&tags).await {
        eprintln!(
            "bookshop: Redis did not take the invalidation of {tags:?}; cached reads may be stale"
        );
    }
}
