//! The methods the fake implements, with their parameters as `api.json` (Bot API 10.1) defines them.
//!
//! `methods.json` is the subset of `../shared/telegram-bot-api/api.json` for these methods (see the README for
//! the command that regenerates it); a test checks it still matches the shared file.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::error::ApiError;
use super::params::{Param, Params};

#[derive(Debug, Deserialize)]
pub struct Spec {
    pub version: String,
    pub methods: HashMap<String, MethodSpec>,
    /// The emoji `ReactionTypeEmoji.emoji` may hold.
    pub reaction_emoji: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct MethodSpec {
    pub returns: Vec<String>,
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    pub types: Vec<String>,
    pub required: bool,
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_json::from_str(include_str!("methods.json")).expect("methods.json is valid")
    })
}

/// Finds a method by name; Bot API method names are case-insensitive.
pub fn method(name: &str) -> Option<(&'static str, &'static MethodSpec)> {
    spec()
        .methods
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(k, v)| (k.as_str(), v))
}

/// Checks required parameters are present and scalar ones have the declared type.
pub fn validate(method: &MethodSpec, params: &Params) -> Result<(), ApiError> {
    for field in &method.fields {
        if !params.has(&field.name) {
            if field.required {
                return Err(missing(&field.name));
            }
            continue;
        }
        let types = &field.types;
        let accepts = |t: &str| types.iter().any(|x| x == t);
        if accepts("InputFile") {
            if matches!(params.0.get(&field.name), Some(Param::File(_)))
                || params.file(&field.name).is_some()
            {
                continue;
            }
            return Err(ApiError::bad_request(format!(
                "there is no {} in the request",
                field.name
            )));
        }
        if accepts("Integer") && !accepts("String") {
            params.int(&field.name)?;
        } else if accepts("Float") {
            params.float(&field.name)?;
        } else if accepts("Boolean") {
            params.bool(&field.name)?;
        } else if types.iter().any(|t| {
            t.starts_with("Array of")
                || t.chars().next().is_some_and(char::is_uppercase)
                    && !matches!(t.as_str(), "String" | "Integer" | "Float" | "Boolean")
        }) {
            params.json(&field.name)?;
        }
    }
    Ok(())
}

/// Telegram's wording for a missing parameter.
fn missing(name: &str) -> ApiError {
    match name {
        "text" => ApiError::bad_request("message text is empty"),
        "photo" | "document" | "video" | "audio" | "voice" | "animation" | "sticker" => {
            ApiError::bad_request(format!("there is no {name} in the request"))
        }
        _ => ApiError::bad_request(format!("{name} is empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_json_matches_the_shared_api_json_when_present() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/telegram-bot-api/api.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipped: {path} not found");
            return;
        };
        let full: serde_json::Value = serde_json::from_str(&text).expect("api.json parses");
        assert_eq!(full["version"], spec().version.as_str());
        for (name, method) in &spec().methods {
            let fields = full["methods"][name]["fields"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(fields.len(), method.fields.len(), "{name}");
            for (theirs, ours) in fields.iter().zip(&method.fields) {
                assert_eq!(theirs["name"], ours.name.as_str(), "{name}");
                assert_eq!(theirs["required"], ours.required, "{name}.{}", ours.name);
            }
        }
    }

    #[test]
    fn method_names_are_case_insensitive() {
        assert_eq!(method("SENDMESSAGE").map(|(n, _)| n), Some("sendMessage"));
        assert!(method("sendTelepathy").is_none());
    }

    #[test]
    fn a_missing_required_parameter_is_a_telegram_style_400() {
        let (_, send) = method("sendMessage").unwrap();
        let mut params = Params::default();
        params
            .0
            .insert("chat_id".to_owned(), Param::Value(1.into()));
        let err = validate(send, &params).unwrap_err();
        assert_eq!(err.error_code, 400);
        assert_eq!(err.description, "Bad Request: message text is empty");
        params
            .0
            .insert("text".to_owned(), Param::Value("hi".into()));
        params
            .0
            .insert("message_thread_id".to_owned(), Param::Value("x".into()));
        let err = validate(send, &params).unwrap_err();
        assert_eq!(
            err.description,
            "Bad Request: invalid message_thread_id specified"
        );
    }
}
