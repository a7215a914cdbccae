//! `GET /v1/greeting?name=NAME`: greets a name of 1 to 64 characters; any other request on
//! this path is a 400 with a JSON `{"error": "..."}` body.

use std::fmt::{self, Display};

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// The route of the greeting.
pub const GREETING_PATH: &str = "/v1/greeting";
/// Longest accepted name, in characters (not bytes).
pub const NAME_MAX_CHARS: usize = 64;

/// The api's own routes.
pub fn routes() -> Router {
    Router::new().route(GREETING_PATH, get(greeting))
}

#[derive(Deserialize)]
struct GreetingQuery {
    name: Option<String>,
}

#[derive(Serialize)]
struct Greeting {
    message: String,
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

/// Why a name was refused.
#[derive(Debug, PartialEq, Eq)]
enum NameError {
    Missing,
    BadLength { chars: usize },
}

impl Display for NameError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => formatter.write_str("query parameter `name` is required"),
            Self::BadLength { chars } => write!(
                formatter,
                "query parameter `name` must be 1 to {NAME_MAX_CHARS} characters, got {chars}"
            ),
        }
    }
}

async fn greeting(query: Result<Query<GreetingQuery>, QueryRejection>) -> Response {
    let name = match query {
        Ok(Query(query)) => query.name,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    match validate_name(name.as_deref()) {
        Ok(name) => Json(Greeting {
            message: format!("hello, {name}"),
        })
        .into_response(),
        Err(error) => bad_request(error.to_string()),
    }
}

fn validate_name(name: Option<&str>) -> Result<&str, NameError> {
    let name = name.ok_or(NameError::Missing)?;
    let chars = name.chars().count();
    if !(1..=NAME_MAX_CHARS).contains(&chars) {
        return Err(NameError::BadLength { chars });
    }
    Ok(name)
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorBody { error })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_1_to_64_characters_are_accepted() {
        let longest_multibyte = "é".repeat(64);
        for name in ["a", "Ada Lovelace", longest_multibyte.as_str()] {
            assert_eq!(validate_name(Some(name)), Ok(name));
        }
    }

    #[test]
    fn missing_empty_and_long_names_are_refused_with_a_reason() {
        let too_long = "x".repeat(65);
        let cases = [
            (None, "query parameter `name` is required"),
            (
                Some(""),
                "query parameter `name` must be 1 to 64 characters, got 0",
            ),
            (
                Some(too_long.as_str()),
                "query parameter `name` must be 1 to 64 characters, got 65",
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(validate_name(name).unwrap_err().to_string(), expected);
        }
    }
}
