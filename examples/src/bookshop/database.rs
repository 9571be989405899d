//! The bookshop's SQLite database, and a count of the reads that reached it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// A book as stored and as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    /// Row id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Author's name.
    pub author: String,
    /// Price in cents.
    pub price_cents: i64,
}

/// What a client sends to add or change a book.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewBook {
    /// Title.
    pub title: String,
    /// Author's name.
    pub author: String,
    /// Price in cents.
    pub price_cents: i64,
}

/// One SQLite connection shared by the handlers; queries run on tokio's blocking threads.
#[derive(Clone)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
    reads: Arc<AtomicU64>,
}

impl Database {
    /// Opens (or creates) the database file and its table; adds three books to an empty one.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let connection = Connection::open(path)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS books (
                 id INTEGER PRIMARY KEY,
                 title TEXT NOT NULL,
                 author TEXT NOT NULL,
                 price_cents INTEGER NOT NULL
             );
             INSERT INTO books (title, author, price_cents)
             SELECT * FROM (VALUES
                 ('Notes on the Analytical Engine', 'Ada Lovelace', 1200),
                 ('Sketch of the Analytical Engine', 'Ada Lovelace', 900),
                 ('Computing Machinery and Intelligence', 'Alan Turing', 1500))
             WHERE NOT EXISTS (SELECT 1 FROM books);",
        )?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            reads: Arc::default(),
        })
    }

    /// How many reads reached the database since it was opened.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// One book.
    pub async fn book(&self, id: i64) -> rusqlite::Result<Option<Book>> {
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT id, title, author, price_cents FROM books WHERE id = ?1",
                    [id],
                    book_of_row,
                )
                .optional()
        })
        .await
    }

    /// An author's books, by id.
    pub async fn books_by(&self, author: String) -> rusqlite::Result<Vec<Book>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT id, title, author, price_cents FROM books WHERE author = ?1 ORDER BY id",
                )?
                .query_map([author], book_of_row)?
                .collect()
        })
        .await
    }

    /// Changes a book; returns its author before the change and the book after, or `None`
    /// when there is no such book.
    pub async fn update(&self, id: i64, book: NewBook) -> rusqlite::Result<Option<(String, Book)>> {
        self.run(move |connection| {
            let transaction = connection.transaction()?;
            let old_author: Option<String> = transaction
                .query_row("SELECT author FROM books WHERE id = ?1", [id], |row| {
                    row.get(0)
                })
                .optional()?;
            let Some(old_author) = old_author else {
                return Ok(None);
            };
            transaction.execute(
                "UPDATE books SET title = ?2, author = ?3, price_cents = ?4 WHERE id = ?1",
                params![id, book.title, book.author, book.price_cents],
            )?;
            transaction.commit()?;
            Ok(Some((old_author, with_id(id, book))))
        })
        .await
    }

    /// Adds a book; returns it with its id.
    pub async fn insert(&self, book: NewBook) -> rusqlite::Result<Book> {
        self.run(move |connection| {
            connection.execute(
                "INSERT INTO books (title, author, price_cents) VALUES (?1, ?2, ?3)",
                params![book.title, book.author, book.price_cents],
            )?;
            Ok(with_id(connection.last_insert_rowid(), book))
        })
        .await
    }

    /// Runs a read-only `query`, counted in [`Database::reads`].
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.run(query).await
    }

    /// Runs `query` on a blocking thread, with the connection.
    async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            query(&mut connection)
        })
        .await
        .expect("a database query does not panic")
    }
}

fn book_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Book> {
    Ok(Book {
        id: row.get(0)?,
        title: row.get(1)?,
        author: row.get(2)?,
        price_cents: row.get(3)?,
    })
}

fn with_id(id: i64, book: NewBook) -> Book {
    Book {
        id,
        title: book.title,
        author: book.author,
        price_cents: book.price_cents,
    }
}
