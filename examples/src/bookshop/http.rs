//! The HTTP surface: routes, JSON bodies, status codes; the pages cached whole by
//! `rtc_http`'s layer, tagged as the reads behind them are.

use std::time::Duration;

use axum::extract::{MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rtc::TaggedCache;
use rtc_http::{ResponseCacheLayer, Tags};
use serde_json::json;

use super::catalog::{self, CatalogError};
use super::database::{Database, NewBook};

/// The service's routes, over `db`; the `#[cached]` reads use rtc's global cache
/// (`rtc::set_global`), the pages `cache` (the same one, in the binary). `metrics` renders
/// what rtc's and rtc-http's `metrics` features recorded, at `GET /metrics`.
///
/// The pages (`GET /books/{id}`, `GET /authors/{author}/books`) go through the response
/// cache: a page of a book is tagged `book:{id}` by its route, an author's list
/// `author:{author}` by its handler; the writes invalidate those tags, so the pages follow the
/// data. `/stats` and `/metrics` are not cached.
pub fn router(db: Database, metrics: PrometheusHandle, cache: TaggedCache) -> Router {
    let page_cache = ResponseCacheLayer::builder(cache)
        .lifetime(Duration::from_secs(600))
        .route_tags(|request| {
            let path = request.uri.path();
            path.strip_prefix("/books/").map(|id| format!("book:{id}"))
        })
        .route_name(|request| {
            request
                .extensions
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str)
                .to_owned()
        })
        .build()
        .expect("the page cache's settings are valid");
    let pages = Router::new()
        .route("/books/{id}", get(book).put(change_book))
        .route("/authors/{author}/books", get(books_by))
        .layer(page_cache);
    Router::new()
        .route("/books", post(add_book))
        .route("/stats", get(stats))
        .route("/metrics", get(move || async move { metrics.render() }))
        .merge(pages)
        .with_state(db)
}

async fn book(State(db): State<Database>, Path(id): Path<i64>) -> Response {
    respond(catalog::book(&db, id).await)
}

/// Tagged by the handler: the author's name is the path's, decoded.
async fn books_by(State(db): State<Database>, Path(author): Path<String>) -> Response {
    let tags = Tags::new([catalog::author_tag(&author)]);
    (
        Extension(tags),
        respond(catalog::books_by(&db, author).await),
    )
        .into_response()
}

async fn change_book(
    State(db): State<Database>,
    Path(id): Path<i64>,
    Json(book): Json<NewBook>,
) -> Response {
    respond(catalog::update(&db, id, book).await)
}

async fn add_book(State(db): State<Database>, Json(book): Json<NewBook>) -> Response {
    match catalog::insert(&db, book).await {
        Ok(book) => (StatusCode::CREATED, Json(book)).into_response(),
        Err(error) => failure(error),
    }
}

/// Database reads so far, and the cache's counters: the numbers that show the cache at work.
async fn stats(State(db): State<Database>) -> Response {
    let cache = rtc::global()
        .map(rtc::TaggedCache::stats)
        .unwrap_or_default();
    Json(json!({
        "database_reads": db.reads(),
        "cache": {
            "hits": cache.hits,
            "misses": cache.misses,
            "sets": cache.sets,
            "invalidations": cache.invalidations,
            "errors": cache.errors,
            "lock_waits": cache.lock_waits,
        },
    }))
    .into_response()
}

fn respond<T: serde::Serialize>(result: Result<T, CatalogError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => failure(error),
    }
}

fn failure(error: CatalogError) -> Response {
    match error {
        CatalogError::NotFound => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such book"})),
        ),
        CatalogError::Database(error) => {
            eprintln!("bookshop: database error: {error}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "database error"})),
            )
        }
    }
    .into_response()
}
