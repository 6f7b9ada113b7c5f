//! The one shape of a refusal: a code, a message a person can act on, and the field at fault.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// A stable machine-readable code such as `invalid_json` or `missing_field`.
    pub code: &'static str,
    pub message: String,
    /// The path of the offending field, such as `recipients[0].email`; absent when the
    /// problem is with the whole body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ValidationError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn at(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// Turns a deserialization error into a refusal that names the field. serde reports a
    /// missing field on its parent, so the name is taken out of the message and appended.
    pub fn from_serde(prefix: &str, err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = join(prefix, &err.path().to_string());
        let inner = err.into_inner();
        let message = inner.to_string();
        let message = strip_position(&message);
        if let Some(name) = backticked_after(message, "missing field ") {
            let field = join(&path, name);
            return Self::at(
                "missing_field",
                field.clone(),
                format!("`{field}` is required"),
            );
        }
        if let Some(name) = backticked_after(message, "unknown field ") {
            // The path of an unknown field already ends in its name.
            let field = if path.ends_with(name) {
                path
            } else {
                join(&path, name)
            };
            let message = format!("`{field}` is not a known field");
            return Self::at("unknown_field", field, message);
        }
        let field = if path.is_empty() { None } else { Some(path) };
        let message = match &field {
            Some(f) => format!("`{f}`: {message}"),
            None => message.to_owned(),
        };
        Self {
            code: "invalid_field",
            message,
            field,
        }
    }
}

fn join(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn backticked_after<'a>(message: &'a str, lead: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(lead)?.strip_prefix('`')?;
    rest.split('`').next()
}

/// serde_json appends " at line 1 column 5" to messages about values already parsed; the
/// field path says more than the position.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Deserializes while tracking the path, so errors can name the field.
pub use serde_path_to_error::deserialize as deserialize_tracked;

/// Parses a body as JSON, refusing what is not JSON with `invalid_json`.
pub fn json_value(body: &[u8]) -> Result<serde_json::Value, ValidationError> {
    serde_json::from_slice(body).map_err(|e| {
        ValidationError::new("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

/// Parses a JSON body into `T`, naming the field at fault when it does not fit.
pub fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ValidationError> {
    deserialize_tracked(json_value(body)?).map_err(|e| ValidationError::from_serde("", e))
}
