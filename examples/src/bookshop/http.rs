//! The HTTP surface: routes, JSON bodies, status codes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use super::catalog::{self, CatalogError};
use super::database::{Database, NewBook};

/// The service's routes, over `db`; the cache is rtc's global one (`rtc::set_global`).
/// `metrics` renders what rtc's `metrics` feature recorded, at `GET /metrics`.
pub fn router(db: Database, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/books", post(add_book))
        .route("/books/{id}", get(book).put(change_book))
        .route("/authors/{author}/books", get(books_by))
        .route("/stats", get(stats))
        .route("/metrics", get(move || async move { metrics.render() }))
        .with_state(db)
}

async fn book(State(db): State<Database>, Path(id): Path<i64>) -> Response {
    respond(catalog::book(&db, id).await)
}

async fn books_by(State(db): State<Database>, Path(author): Path<String>) -> Response {
    respond(catalog::books_by(&db, author).await)
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
